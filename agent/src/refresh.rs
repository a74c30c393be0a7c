//! Reading a secret path and rendering its files; renewing its lease.

use std::time::Duration;

use reqwest::Method;
use serde_json::Map;
use tokio::time::Instant;

use crate::agent::{classify, Agent, Failure, Halt};
use crate::content::render;
use crate::metrics::{Outcome, RenderOutcome};
use crate::output::write_atomic;
use crate::secret::SecretRead;
use crate::state::{two_thirds, Lease};

impl Agent {
    /// Read source `i` and render its files. Files that fail keep their
    /// last good content.
    pub(crate) async fn refresh(&mut self, i: usize) -> Result<(), Halt> {
        let path = self.sources[i].path.clone();
        let read = match self
            .client
            .write_leased(Method::GET, &path, &Map::new(), None)
            .await
        {
            Ok(secret) => SecretRead::from_envelope(secret),
            Err(e) => {
                return match classify(&e) {
                    Failure::Unavailable => Err(self.unavailable(&format!("read of {path}"), &e)),
                    Failure::Denied if self.denied() => Ok(()),
                    _ => {
                        self.source_failed(i, format!("read of {path} failed: {e}"));
                        Ok(())
                    }
                };
            }
        };
        self.available();
        let source = &mut self.sources[i];
        source.lease = read.has_lease().then(|| {
            Lease::issued(
                read.lease_id.clone(),
                Duration::from_secs(read.lease_duration),
                read.renewable,
            )
        });
        if read.has_lease() {
            tracing::info!(path = %path, lease_id = %read.lease_id, ttl_seconds = read.lease_duration, "secret issued");
        }
        let mut failures = Vec::new();
        for &f in &self.sources[i].files {
            let spec = &self.config.files[f];
            let outcome = render(&self.env, spec, &read)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    write_atomic(&self.output_dir, &spec.name, &bytes, spec.mode)
                        .map_err(|e| e.to_string())
                });
            match outcome {
                Ok(true) => {
                    self.state.metrics.render(RenderOutcome::Written);
                    tracing::info!(file = %spec.name, path = %path, "file rendered");
                    if let Some(command) = &spec.command {
                        let (command, file, state) =
                            (command.clone(), spec.name.clone(), self.state.clone());
                        self.commands.spawn(async move {
                            crate::command::run(command, file, &state.metrics).await
                        });
                    }
                }
                Ok(false) => {
                    self.state.metrics.render(RenderOutcome::Unchanged);
                    tracing::debug!(file = %spec.name, "file unchanged");
                }
                Err(message) => {
                    self.state.metrics.render(RenderOutcome::Failed);
                    tracing::error!(file = %spec.name, error = %message, "render failed; keeping the last good file");
                    failures.push(message);
                }
            }
        }
        // Finished commands need no handle any more.
        while self.commands.try_join_next().is_some() {}
        let kv2 = read.is_kv2();
        let source = &mut self.sources[i];
        // Reading the same secret again renders the same failure: wait for
        // a change (or a new lease) instead of retrying.
        source.dirty = false;
        source.retry_at = None;
        if failures.is_empty() {
            source.rendered = true;
            source.retry.reset();
        } else {
            let message = failures.join("; ");
            self.permanent = Some(message.clone());
            self.last_failure = Some(message);
        }
        if kv2 {
            self.watch(i);
        }
        Ok(())
    }

    /// A read the core refused: keep the files, try again later.
    fn source_failed(&mut self, i: usize, message: String) {
        let source = &mut self.sources[i];
        let delay = source.retry.next_delay();
        source.retry_at = Some(Instant::now() + delay);
        tracing::error!(path = %source.path, error = %message, retry_in = ?delay, "secret read failed; keeping the last good files");
        self.permanent = Some(message.clone());
        self.last_failure = Some(message);
    }

    /// Renew source `i`'s lease, or issue a new secret when it cannot be
    /// renewed any more.
    pub(crate) async fn lease_work(&mut self, i: usize) -> Result<(), Halt> {
        let Some(lease) = self.sources[i].lease.clone() else {
            return Ok(());
        };
        if lease.reissue {
            tracing::info!(path = %self.sources[i].path, "lease near its end; issuing a new secret");
            self.reissue(i);
            return Ok(());
        }
        match self
            .client
            .renew_lease(&lease.id, lease.ttl.as_secs())
            .await
        {
            Ok(renewed) => {
                self.available();
                self.state.metrics.lease_renewal(Outcome::Success);
                let ttl = Duration::from_secs(renewed.lease_duration);
                tracing::debug!(lease_id = %lease.id, ttl_seconds = renewed.lease_duration, "lease renewed");
                if let Some(current) = self.sources[i].lease.as_mut() {
                    current.due = Instant::now() + two_thirds(ttl);
                    // Renewals no longer give back half the TTL: the max TTL
                    // is near, so issue a new secret at the next due time.
                    current.reissue = !renewed.renewable || ttl < lease.ttl / 2;
                }
                Ok(())
            }
            Err(e) => {
                self.state.metrics.lease_renewal(Outcome::Failure);
                match classify(&e) {
                    Failure::Unavailable => Err(self.unavailable("lease renewal", &e)),
                    Failure::Denied if self.denied() => Ok(()),
                    _ => {
                        tracing::warn!(lease_id = %lease.id, error = %e, "lease renewal refused; issuing a new secret");
                        self.reissue(i);
                        Ok(())
                    }
                }
            }
        }
    }

    fn reissue(&mut self, i: usize) {
        let source = &mut self.sources[i];
        source.lease = None;
        source.dirty = true;
        source.retry_at = None;
    }
}
