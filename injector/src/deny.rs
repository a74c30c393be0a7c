//! Why a pod is refused at admission. Every message names what the pod's
//! author has to change (usually an annotation), because it is shown to them
//! verbatim by `kubectl` and in the owner's events.

/// A pod the injector refuses to admit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Deny {
    /// An annotation has a value the injector cannot act on.
    #[error("annotation {annotation}: {reason}")]
    Annotation {
        /// The full annotation key.
        annotation: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Injection was requested but no file was.
    #[error(
        "injection requested but no secret named: add cairn.dev/secret-<file>: <path> \
         (or vault.hashicorp.com/agent-inject-secret-<file>)"
    )]
    NoFiles,
    /// Two annotations produce the same file.
    #[error("two annotations write the file {0:?}")]
    DuplicateFile(String),
    /// A container already mounts something where the secrets go.
    #[error("container {container:?} already mounts a volume at {path}")]
    MountPathTaken {
        /// The container's name.
        container: String,
        /// The mount path.
        path: String,
    },
    /// The containers annotation names a container the pod does not have.
    #[error("annotation {annotation}: the pod has no container {container:?}")]
    UnknownContainer {
        /// The full annotation key.
        annotation: String,
        /// The name that was not found.
        container: String,
    },
    /// The agent config built from the annotations does not validate.
    #[error("the agent config derived from the annotations is invalid: {0}")]
    AgentConfig(#[from] cairn_client::agent_config::AgentConfigError),
    /// A classic sidecar would keep a Job's pod running forever.
    #[error(
        "pod belongs to Job {job:?} and native sidecars are off: \
         set cairn.dev/mode: init-only (or enable native sidecars)"
    )]
    SidecarInJob {
        /// The owning Job's name.
        job: String,
    },
}

impl Deny {
    /// A refusal about one annotation.
    pub fn annotation(annotation: impl Into<String>, reason: impl Into<String>) -> Self {
        Deny::Annotation {
            annotation: annotation.into(),
            reason: reason.into(),
        }
    }
}
