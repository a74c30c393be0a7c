//! What the injector adds to pods: the agent image, how the agent reaches
//! the core, and the injector's own namespace.

/// Settings of the mutation, from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `cairn-agent` image.
    pub agent_image: String,
    /// The core's address handed to the agent.
    pub cairn_addr: String,
    /// A ConfigMap (in the pod's namespace) with `ca.crt`, the CA of the
    /// core's certificate; the agent uses the system roots without it.
    pub ca_configmap: Option<String>,
    /// The injector's own namespace, whose pods are never touched.
    pub own_namespace: Option<String>,
    /// Whether the agent runs as a native sidecar (an init container with
    /// `restartPolicy: Always`, Kubernetes 1.29+) unless a pod says otherwise.
    pub native_sidecar: bool,
    /// The auth mount the agent logs in at, unless a pod names another.
    pub auth_mount: String,
    /// The agent's health port, unless a container of the pod declares it.
    pub agent_port: u16,
}

/// Namespaces whose pods are never touched besides the injector's own.
pub const SKIPPED_NAMESPACES: [&str; 1] = ["kube-system"];

impl Config {
    /// A config with the defaults: native sidecars, auth mount
    /// `kubernetes`, agent port 8099, no CA ConfigMap, no own namespace.
    pub fn new(agent_image: impl Into<String>, cairn_addr: impl Into<String>) -> Self {
        Config {
            agent_image: agent_image.into(),
            cairn_addr: cairn_addr.into(),
            ca_configmap: None,
            own_namespace: None,
            native_sidecar: true,
            auth_mount: "kubernetes".into(),
            agent_port: 8099,
        }
    }

    /// The same config with a CA ConfigMap.
    pub fn with_ca_configmap(mut self, name: impl Into<String>) -> Self {
        self.ca_configmap = Some(name.into());
        self
    }

    /// The same config with the injector's namespace set.
    pub fn with_own_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.own_namespace = Some(namespace.into());
        self
    }

    /// The same config with classic sidecars by default.
    pub fn with_classic_sidecars(mut self) -> Self {
        self.native_sidecar = false;
        self
    }

    /// Whether pods in `namespace` are left alone.
    pub fn skips_namespace(&self, namespace: &str) -> bool {
        SKIPPED_NAMESPACES.contains(&namespace) || self.own_namespace.as_deref() == Some(namespace)
    }
}
