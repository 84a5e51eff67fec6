//! What an Admin API path addresses.

use split_core::config::ResourceKind;

use crate::resource::Resource;

/// The path prefix every Admin API request starts with.
pub const PREFIX: &str = "/apisix/admin";

/// An Admin API path, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target<'a> {
    /// `/apisix/admin` itself (HEAD is the liveness probe).
    Root,
    /// `plugins/list`.
    PluginsList,
    /// `plugins` (`?all=true`: every plugin's schema).
    Plugins,
    /// `plugins/{name}`.
    Plugin(&'a str),
    /// `schema/{res}`.
    Schema(&'a str),
    /// `schema/plugins/{name}`.
    SchemaPlugin(&'a str),
    /// `schema/validate/{res}`.
    SchemaValidate(&'a str),
    /// `openapi.json`.
    OpenApi,
    /// `{res}[/{id}[/{sub/path}]]`.
    Resource {
        /// The resource.
        res: Resource,
        /// Id segment.
        id: Option<&'a str>,
        /// Remaining segments joined with `/` (sub-path PATCH); empty if none.
        sub: String,
    },
    /// An unknown resource name → 404 `Unsupported resource type: x`.
    Unsupported(&'a str),
    /// Not under the prefix, or a known endpoint with a malformed tail → 404.
    NotFound,
}

impl<'a> Target<'a> {
    /// Parses a request path (without query).
    pub fn parse(path: &'a str) -> Target<'a> {
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return Target::NotFound;
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return Target::NotFound;
        }
        let segs: Vec<&'a str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match segs.as_slice() {
            [] => Target::Root,
            ["openapi.json"] => Target::OpenApi,
            ["plugins"] => Target::Plugins,
            ["plugins", "list"] => Target::PluginsList,
            ["plugins", name] => Target::Plugin(name),
            ["schema", "plugins", name] => Target::SchemaPlugin(name),
            ["schema", "validate", res] => Target::SchemaValidate(res),
            ["schema", res] => Target::Schema(res),
            ["plugins", ..] | ["schema", ..] => Target::NotFound,
            // Consumer credentials are a sub-resource split does not store yet.
            ["consumers", _, "credentials", ..] => Target::Unsupported("credentials"),
            [res, tail @ ..] => match ResourceKind::parse(res) {
                None => Target::Unsupported(res),
                Some(kind) => Target::Resource {
                    res: Resource::of(kind),
                    id: tail.first().copied(),
                    sub: tail.get(1..).map(|s| s.join("/")).unwrap_or_default(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(Target::parse("/apisix/admin"), Target::Root);
        assert_eq!(Target::parse("/apisix/admin/"), Target::Root);
        assert_eq!(Target::parse("/apisix/adminx"), Target::NotFound);
        assert_eq!(Target::parse("/other"), Target::NotFound);
        assert_eq!(
            Target::parse("/apisix/admin/plugins/list"),
            Target::PluginsList
        );
        assert_eq!(
            Target::parse("/apisix/admin/plugins/traffic-split"),
            Target::Plugin("traffic-split")
        );
        assert_eq!(
            Target::parse("/apisix/admin/schema/route"),
            Target::Schema("route")
        );
        assert_eq!(
            Target::parse("/apisix/admin/schema/validate/routes"),
            Target::SchemaValidate("routes")
        );
        assert_eq!(
            Target::parse("/apisix/admin/protos/1"),
            Target::Unsupported("protos")
        );
        let Target::Resource { res, id, sub } =
            Target::parse("/apisix/admin/routes/1/upstream/nodes")
        else {
            panic!("resource")
        };
        assert_eq!(res.kind, ResourceKind::Routes);
        assert_eq!(id, Some("1"));
        assert_eq!(sub, "upstream/nodes");
        let Target::Resource { id, sub, .. } = Target::parse("/apisix/admin/routes") else {
            panic!("resource")
        };
        assert_eq!((id, sub.as_str()), (None, ""));
    }
}
