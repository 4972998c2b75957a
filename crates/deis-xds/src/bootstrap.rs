//! The Envoy bootstrap shipped with the feed (`envoy/bootstrap.yaml`),
//! rendered for one Envoy.

/// The template, as shipped.
pub const TEMPLATE: &str = include_str!("../envoy/bootstrap.yaml");

/// What differs between Envoys.
#[derive(Clone, Debug)]
pub struct Bootstrap<'a> {
    /// `node.id`, shown in the feed's logs and health.
    pub node_id: &'a str,
    /// Envoy's admin port on 127.0.0.1 (stats, config dump).
    pub admin_port: u16,
    /// Host name or address of the feed.
    pub xds_host: &'a str,
    /// Port of the feed.
    pub xds_port: u16,
    /// The feed's token (`PlatformSecret::derive("xds")`).
    pub xds_token: &'a str,
    /// Incremental xDS instead of state-of-the-world.
    pub delta: bool,
}

impl Bootstrap<'_> {
    /// The bootstrap YAML.
    pub fn render(&self) -> String {
        TEMPLATE
            .replace("{node_id}", self.node_id)
            .replace("{admin_port}", &self.admin_port.to_string())
            .replace("{xds_host}", self.xds_host)
            .replace("{xds_port}", &self.xds_port.to_string())
            .replace("{xds_token}", self.xds_token)
            .replace("{api_type}", if self.delta { "DELTA_GRPC" } else { "GRPC" })
    }
}
