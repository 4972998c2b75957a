//! Which app, process and source a record belongs to (the rules are in the
//! module doc of [`super`]).

use chrono::{DateTime, Utc};
use deis_scheduler::{LogLine, LogSource};

use super::decode::FrameError;
use super::msgpack::{Reader, Value};

/// What a frame's tag tells.
#[derive(Debug, Default)]
pub(crate) struct Tag<'t> {
    /// After the last `.` (the whole tag without one); empty for an empty
    /// tag.
    last_segment: &'t str,
    /// A Fluent Bit tail tag for a container log file.
    container: Option<ContainerTag<'t>>,
}

/// `...var.log.containers.<pod>_<namespace>_<container>-<64 hex>.log`
#[derive(Debug, PartialEq, Eq)]
struct ContainerTag<'t> {
    pod: &'t str,
    namespace: &'t str,
    container: &'t str,
}

impl<'t> Tag<'t> {
    pub(crate) fn parse(tag: &'t str) -> Self {
        Tag {
            last_segment: tag.rsplit_once('.').map_or(tag, |(_, last)| last),
            container: ContainerTag::parse(tag),
        }
    }
}

impl<'t> ContainerTag<'t> {
    fn parse(tag: &'t str) -> Option<Self> {
        const DIR: &str = "var.log.containers.";
        let (_, file) = tag.split_once(DIR)?;
        let file = file.strip_suffix(".log")?;
        let mut parts = file.splitn(3, '_');
        let (pod, namespace, rest) = (parts.next()?, parts.next()?, parts.next()?);
        let (container, id) = rest.rsplit_once('-')?;
        let valid = !pod.is_empty()
            && !namespace.is_empty()
            && !container.is_empty()
            && id.len() == 64
            && id.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then_some(ContainerTag {
            pod,
            namespace,
            container,
        })
    }
}

/// The record fields that matter, borrowed from the frame.
#[derive(Debug, Default)]
pub(crate) struct Fields<'f> {
    app: Option<&'f [u8]>,
    process: Option<&'f [u8]>,
    source: Option<&'f [u8]>,
    release: Option<&'f [u8]>,
    log: Option<&'f [u8]>,
    message: Option<&'f [u8]>,
    msg: Option<&'f [u8]>,
    k8s_namespace: Option<&'f [u8]>,
    k8s_pod: Option<&'f [u8]>,
    k8s_container: Option<&'f [u8]>,
    k8s_app: Option<&'f [u8]>,
    k8s_type: Option<&'f [u8]>,
}

/// Reads a record (a map), keeping the fields that matter.
pub(crate) fn decode_record<'f>(r: &mut Reader<'f>) -> Result<Fields<'f>, FrameError> {
    let Value::Map(count) = r.next()? else {
        return Err(FrameError::malformed("a record must be a map"));
    };
    let mut f = Fields::default();
    for _ in 0..count {
        let key = r.next()?;
        r.skip_children(key)?;
        let slot = match key.bytes() {
            Some(b"log") => &mut f.log,
            Some(b"message") => &mut f.message,
            Some(b"msg") => &mut f.msg,
            Some(b"app") => &mut f.app,
            Some(b"process") => &mut f.process,
            Some(b"source") => &mut f.source,
            Some(b"release") => &mut f.release,
            Some(b"kubernetes") => {
                kubernetes(r, &mut f)?;
                continue;
            }
            _ => {
                r.skip_value()?;
                continue;
            }
        };
        *slot = r.string()?;
    }
    Ok(f)
}

/// The `kubernetes` map of Fluent Bit's and Fluentd's kubernetes filters.
fn kubernetes<'f>(r: &mut Reader<'f>, f: &mut Fields<'f>) -> Result<(), FrameError> {
    let value = r.next()?;
    let Value::Map(count) = value else {
        return r.skip_children(value);
    };
    for _ in 0..count {
        let key = r.next()?;
        r.skip_children(key)?;
        let slot = match key.bytes() {
            Some(b"namespace_name") => &mut f.k8s_namespace,
            Some(b"pod_name") => &mut f.k8s_pod,
            Some(b"container_name") => &mut f.k8s_container,
            Some(b"labels") => {
                let labels = r.next()?;
                let Value::Map(count) = labels else {
                    r.skip_children(labels)?;
                    continue;
                };
                for _ in 0..count {
                    let key = r.next()?;
                    r.skip_children(key)?;
                    match key.bytes() {
                        Some(b"app") => f.k8s_app = r.string()?,
                        Some(b"type") => f.k8s_type = r.string()?,
                        _ => r.skip_value()?,
                    }
                }
                continue;
            }
            _ => {
                r.skip_value()?;
                continue;
            }
        };
        *slot = r.string()?;
    }
    Ok(())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn non_empty(bytes: Option<&[u8]>) -> Option<&[u8]> {
    bytes.filter(|b| !b.is_empty())
}

/// The line for a record; `None` when no app can be found for it.
pub(crate) fn line(f: &Fields<'_>, time: DateTime<Utc>, tag: &Tag<'_>) -> Option<LogLine> {
    let app = match non_empty(f.app)
        .or(non_empty(f.k8s_app))
        .or(non_empty(f.k8s_namespace))
    {
        Some(app) => text(app),
        None => tag.container.as_ref()?.namespace.to_owned(),
    };
    let process = if let Some(process) = non_empty(f.process) {
        text(process)
    } else if let Some(pod) = non_empty(f.k8s_pod) {
        pod_process(
            &app,
            &String::from_utf8_lossy(pod),
            non_empty(f.k8s_type).map(String::from_utf8_lossy).as_deref(),
            non_empty(f.k8s_container).map(String::from_utf8_lossy).as_deref(),
        )
    } else if let Some(container) = &tag.container {
        pod_process(&app, container.pod, None, Some(container.container))
    } else if !tag.last_segment.is_empty() {
        tag.last_segment.to_owned()
    } else {
        "app".to_owned()
    };
    let source = match f.source {
        Some(b"router") => LogSource::Router,
        Some(b"deis") => LogSource::Platform,
        _ => LogSource::App,
    };
    let line = f.log.or(f.message).or(f.msg).unwrap_or_default();
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line);
    Some(LogLine {
        time,
        app,
        source,
        process,
        release: f.release.map(text).unwrap_or_default(),
        text: text(line),
    })
}

/// `<type>.<instance>` for a pod: the instance is the pod name's last
/// `-` segment; the type is the `type` label, else read from a Deployment's
/// pod name (`<app>-<type>-<hash>-<suffix>`), else the container's name
/// (less an `<app>-` prefix), else `app`.
fn pod_process(app: &str, pod: &str, type_label: Option<&str>, container: Option<&str>) -> String {
    let instance = pod.rsplit_once('-').map_or(pod, |(_, suffix)| suffix);
    let kind = type_label
        .or_else(|| deployment_type(app, pod))
        .or_else(|| {
            container.map(|c| {
                c.strip_prefix(app)
                    .and_then(|c| c.strip_prefix('-'))
                    .filter(|c| !c.is_empty())
                    .unwrap_or(c)
            })
        })
        .unwrap_or("app");
    format!("{kind}.{instance}")
}

/// The type in a Deployment's pod name `<app>-<type>-<hash>-<suffix>` (the
/// type may hold dashes when the name starts with `<app>-`).
fn deployment_type<'p>(app: &str, pod: &'p str) -> Option<&'p str> {
    let kind = match pod.strip_prefix(app).and_then(|p| p.strip_prefix('-')) {
        Some(rest) => {
            let mut parts = rest.rsplitn(3, '-');
            let (_suffix, _hash) = (parts.next()?, parts.next()?);
            parts.next()?
        }
        None => {
            let mut parts = pod.rsplitn(4, '-');
            let (_suffix, _hash, kind) = (parts.next()?, parts.next()?, parts.next()?);
            parts.next()?;
            kind
        }
    };
    (!kind.is_empty()).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_tags() {
        let id = "0123456789abcdef".repeat(4);
        let tag = format!("kube.var.log.containers.myapp-web-5d9f8c7b6-x7k2p_myapp_myapp-web-{id}.log");
        assert_eq!(
            ContainerTag::parse(&tag),
            Some(ContainerTag {
                pod: "myapp-web-5d9f8c7b6-x7k2p",
                namespace: "myapp",
                container: "myapp-web",
            })
        );
        assert_eq!(ContainerTag::parse("kube.var.log.containers.a_b_c-123.log"), None);
        assert_eq!(ContainerTag::parse("deis.app"), None);
        assert_eq!(Tag::parse("deis.app").last_segment, "app");
        assert_eq!(Tag::parse("").last_segment, "");
    }

    #[test]
    fn pod_processes() {
        let p = pod_process;
        assert_eq!(
            p("myapp", "myapp-web-5d9f8c7b6-x7k2p", Some("web"), None),
            "web.x7k2p"
        );
        assert_eq!(p("myapp", "myapp-web-5d9f8c7b6-x7k2p", None, None), "web.x7k2p");
        assert_eq!(
            p("myapp", "myapp-my-worker-5d9f8c7b6-x7k2p", None, None),
            "my-worker.x7k2p"
        );
        assert_eq!(p("other", "myapp-web-5d9f8c7b6-x7k2p", None, None), "web.x7k2p");
        assert_eq!(
            p("logging", "fluentd-abcde", None, Some("fluentd")),
            "fluentd.abcde"
        );
        assert_eq!(
            p("myapp", "myapp-5d9f8c7b6-x7k2p", None, Some("myapp-cmd")),
            "cmd.x7k2p"
        );
        assert_eq!(p("x", "solo", None, None), "app.solo");
    }
}
