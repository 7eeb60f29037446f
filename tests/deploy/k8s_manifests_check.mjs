// Validates rendered manifests against the Kubernetes schemas and checks
// what the deployment promises (docs/deployment.md).
//   node k8s_manifests_check.mjs NODE_MODULES NAME=FILE...
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [modules, ...inputs] = process.argv.slice(2);
const load = (name) => import(pathToFileURL(`${modules}/${name}`).href);
const { parseAllDocuments } = await load("yaml/dist/index.js");

// "apps/v1" -> kubernetes-models/apps/v1; "v1" -> kubernetes-models/v1.
async function validate(object) {
  const group = await load(`kubernetes-models/${object.apiVersion}/index.js`);
  const Model = group[object.kind];
  assert.ok(Model, `no schema for ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();  // throws, naming the field, when invalid
}

const byKind = (objects, kind) => objects.filter((o) => o.kind === kind);
const one = (objects, kind) => {
  const found = byKind(objects, kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0];
};
const flagValue = (args, flag) => {
  const arg = args.find((a) => a.startsWith(`--${flag}=`));
  return arg === undefined ? undefined : arg.slice(flag.length + 3);
};
const matches = (selector, labels) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

function checkHardenedPod(spec, what) {
  assert.equal(spec.securityContext.runAsNonRoot, true, `${what}: runAsNonRoot`);
  assert.ok(spec.securityContext.runAsUser > 0, `${what}: a non-root uid`);
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const sc = c.securityContext ?? {};
    assert.equal(sc.readOnlyRootFilesystem, true, `${what}/${c.name}: read-only root`);
    assert.equal(sc.allowPrivilegeEscalation, false, `${what}/${c.name}: no escalation`);
    assert.deepEqual(sc.capabilities?.drop, ["ALL"], `${what}/${c.name}: no capabilities`);
  }
}

function checkServer(objects, variant) {
  const deployment = one(objects, "Deployment");
  const pod = deployment.spec.template;
  const spec = pod.spec;
  const server = spec.containers.find((c) => c.name === "server");
  const args = server.args;
  checkHardenedPod(spec, "server pod");

  // Probes over plain HTTP on the metrics port (gRPC speaks TLS).
  const metricsPort = server.ports.find((p) => p.name === "metrics");
  assert.ok(flagValue(args, "tls_cert"), "TLS is on");
  for (const [probe, path] of [["startupProbe", "/healthz"],
                               ["readinessProbe", "/readyz"],
                               ["livenessProbe", "/healthz"]]) {
    assert.equal(server[probe].httpGet.path, path, probe);
    assert.equal(server[probe].httpGet.port, metricsPort.name, probe);
  }
  const startup = server.startupProbe;
  assert.ok(startup.periodSeconds * startup.failureThreshold >= 300,
            "start-up probe allows 5 minutes of warm-up");
  const drain = Number(flagValue(args, "drain_timeout_s") ?? 30);
  assert.ok(spec.terminationGracePeriodSeconds > drain,
            "grace period above the drain timeout");

  // TLS material and tokens from Secrets, mounted where the flags point.
  const mountOf = (flag) => {
    const path = flagValue(args, flag);
    const mount = server.volumeMounts.find((m) => path.startsWith(m.mountPath + "/"));
    assert.ok(mount, `--${flag} is on a mounted volume`);
    return spec.volumes.find((v) => v.name === mount.name);
  };
  assert.ok(mountOf("tls_cert").secret?.secretName, "certificate from a Secret");
  assert.ok(mountOf("tls_key").secret?.secretName, "key from a Secret");
  assert.ok(mountOf("auth_tokens_file").secret?.secretName, "tokens from a Secret");

  // The shared model repository: a ReadWriteMany claim, read-only here.
  const modelMount = server.volumeMounts.find(
      (m) => m.mountPath === flagValue(args, "model_root"));
  assert.equal(modelMount.readOnly, true, "replicas only read the models");
  const claimName = spec.volumes.find((v) => v.name === modelMount.name)
                        .persistentVolumeClaim.claimName;
  const claim = byKind(objects, "PersistentVolumeClaim")
                    .find((c) => c.metadata.name === claimName);
  assert.deepEqual(claim.spec.accessModes, ["ReadWriteMany"]);

  // Scraped by Prometheus.
  assert.equal(pod.metadata.annotations["prometheus.io/scrape"], "true");
  assert.equal(pod.metadata.annotations["prometheus.io/port"],
               String(metricsPort.containerPort));

  const labels = pod.metadata.labels;
  const service = one(objects, "Service");
  assert.ok(matches(service.spec.selector, labels), "Service selects the pods");
  assert.ok(service.spec.ports.some((p) => p.targetPort === "grpc"));
  const budget = one(objects, "PodDisruptionBudget");
  assert.ok(matches(budget.spec.selector.matchLabels, labels), "PDB selects the pods");
  const autoscaler = one(objects, "HorizontalPodAutoscaler");
  assert.equal(autoscaler.spec.scaleTargetRef.name, deployment.metadata.name);
  assert.ok(autoscaler.spec.minReplicas >= 2, "HPA keeps two replicas");
  const policy = one(objects, "NetworkPolicy");
  assert.ok(matches(policy.spec.podSelector.matchLabels, labels));

  const limits = server.resources.limits;
  if (variant === "gpu") {
    assert.equal(Number(limits["nvidia.com/gpu"]), 1, "one GPU per replica");
    assert.equal(spec.nodeSelector["nvidia.com/gpu.present"], "true");
    assert.ok(spec.tolerations.some((t) => t.key === "nvidia.com/gpu"));
    assert.equal(flagValue(args, "device"), "cuda:0");
  } else {
    assert.equal(limits["nvidia.com/gpu"], undefined, "no GPU on CPU nodes");
    assert.equal(flagValue(args, "device"), "cpu");
  }
}

function checkTraining(objects) {
  const job = one(objects, "Job");
  const spec = job.spec.template.spec;
  checkHardenedPod(spec, "training pod");
  const trainer = spec.containers[0];
  const root = flagValue(trainer.args, "model_root");
  const mount = trainer.volumeMounts.find((m) => m.mountPath === root);
  assert.notEqual(mount.readOnly, true, "the trainer writes the models");
  const claim = spec.volumes.find((v) => v.name === mount.name)
                    .persistentVolumeClaim.claimName;
  assert.equal(claim, "segmentation-models", "the servers' claim");
}

for (const input of inputs) {
  const [name, file] = input.split("=");
  const objects = parseAllDocuments(readFileSync(file, "utf8"))
                      .map((d) => d.toJS())
                      .filter((o) => o);
  for (const object of objects) await validate(object);
  if (name === "training") {
    checkTraining(objects);
  } else {
    checkServer(objects, name.endsWith("gpu") ? "gpu" : "cpu");
  }
  console.log(`${name}: ${objects.length} objects valid (${objects.map((o) => o.kind).join(", ")}); checks passed`);
}
