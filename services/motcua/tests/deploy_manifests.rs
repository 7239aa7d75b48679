//! The deployment files (deploy/): every Kubernetes manifest and the compose file parse, and
//! what they reference exists. That covers ConfigMaps, Secrets and their keys, named ports,
//! selectors, the autoscaler's and disruption budgets' targets, and the kustomization's
//! files. Every container's command is checked against the binary itself: the subcommand must
//! exist, and every flag and `MOTCUA_*` variable it names must appear in that command's
//! `--help`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

mod common;

use common::{deploy_dir, yaml_documents as documents};

const BIN: &str = env!("CARGO_BIN_EXE_motcua");

/// `motcua <words> --help`, which must succeed.
fn help(words: &[String]) -> String {
    let output = Command::new(BIN)
        .args(words)
        .arg("--help")
        .env_clear()
        .output()
        .expect("motcua runs");
    assert!(
        output.status.success(),
        "`motcua {} --help` fails: {}",
        words.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The subcommand words of `args` (up to the first flag), and the flags.
fn split_args(args: &[String]) -> (Vec<String>, Vec<String>) {
    let words: Vec<String> = args
        .iter()
        .take_while(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let flags = args
        .iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_owned())
        .collect();
    (words, flags)
}

/// Checks a motcua container's command and the motcua variables it is given.
fn check_command(what: &str, args: &[String], env: &BTreeSet<String>) {
    let (words, flags) = split_args(args);
    assert!(!words.is_empty(), "{what}: no subcommand in {args:?}");
    let text = help(&words);
    for flag in flags {
        assert!(
            text.contains(&flag),
            "{what}: `motcua {}` has no flag {flag}",
            words.join(" ")
        );
    }
    // Variables of the shared ConfigMap that a command does not read are harmless; the ones a
    // command is given on its own must be real. Every MOTCUA_* name must exist somewhere.
    for variable in env {
        if variable.starts_with("MOTCUA_") {
            assert!(
                all_variables().contains(variable),
                "{what}: {variable} is no motcua setting"
            );
        }
    }
}

/// Every environment variable any motcua command reads (from docs/configuration.md, which a
/// test in operations.rs keeps equal to the binary's flags).
fn all_variables() -> BTreeSet<String> {
    let reference = std::fs::read_to_string(deploy_dir().join("../docs/configuration.md"))
        .expect("docs/configuration.md");
    let mut names = BTreeSet::new();
    for part in reference.split('`') {
        if part.starts_with("MOTCUA_") || part == "DATABASE_URL" || part == "KAFKA_BROKERS" {
            names.insert(part.to_owned());
        }
    }
    names.insert("MOTCUA_LOG".into());
    names
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_kubernetes_manifests_parse_and_reference_what_exists() {
    let dir = deploy_dir().join("k8s");
    let kustomization = documents(&dir.join("kustomization.yaml"));
    let listed = strings(&kustomization[0]["resources"]);
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed.iter().cloned().collect::<BTreeSet<_>>(),
        on_disk,
        "kustomization.yaml lists exactly the manifests"
    );

    let mut all = Vec::new();
    for file in &listed {
        for doc in documents(&dir.join(file)) {
            for field in ["apiVersion", "kind"] {
                assert!(doc[field].is_string(), "{file}: a document without {field}");
            }
            assert!(
                doc["metadata"]["name"].is_string(),
                "{file}: a document without a name"
            );
            all.push((file.clone(), doc));
        }
    }
    let named = |kind: &str| -> BTreeMap<String, Value> {
        all.iter()
            .filter(|(_, d)| d["kind"] == kind)
            .map(|(_, d)| {
                (
                    d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    d.clone(),
                )
            })
            .collect()
    };
    let config_maps = named("ConfigMap");
    let secrets = named("Secret");
    let deployments = named("Deployment");
    let key_exists = |map: &Value, key: &str| {
        map["data"].get(key).is_some() || map["stringData"].get(key).is_some()
    };
    let config_variables: BTreeSet<String> = config_maps
        .values()
        .flat_map(|m| {
            m["data"]
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    assert!(deployments.len() >= 5, "a Deployment per service");

    for (name, deployment) in &deployments {
        let selector = &deployment["spec"]["selector"]["matchLabels"];
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for (key, value) in selector.as_object().expect("a selector") {
            assert_eq!(&labels[key], value, "{name}: the selector matches its pods");
        }
        let pod = &deployment["spec"]["template"]["spec"];
        let volumes: BTreeMap<String, Value> = pod["volumes"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for volume in volumes.values() {
            if let Some(secret) = volume["secret"]["secretName"].as_str() {
                let secret_doc = secrets
                    .get(secret)
                    .unwrap_or_else(|| panic!("{name}: no Secret {secret}"));
                for item in volume["secret"]["items"].as_array().into_iter().flatten() {
                    let key = item["key"].as_str().expect("a key");
                    assert!(
                        key_exists(secret_doc, key),
                        "{name}: Secret {secret} has no {key}"
                    );
                }
            }
            if let Some(map) = volume["configMap"]["name"].as_str() {
                assert!(config_maps.contains_key(map), "{name}: no ConfigMap {map}");
            }
        }
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"], true,
            "{name}: runs as a non-root user"
        );
        for container in pod["containers"].as_array().expect("containers") {
            let what = format!("{name}/{}", container["name"]);
            let ports: BTreeSet<String> = container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            for from in container["envFrom"].as_array().into_iter().flatten() {
                if let Some(map) = from["configMapRef"]["name"].as_str() {
                    assert!(config_maps.contains_key(map), "{what}: no ConfigMap {map}");
                }
                if let Some(secret) = from["secretRef"]["name"].as_str() {
                    assert!(secrets.contains_key(secret), "{what}: no Secret {secret}");
                }
            }
            let mut env: BTreeSet<String> = config_variables.clone();
            for variable in container["env"].as_array().into_iter().flatten() {
                env.insert(variable["name"].as_str().expect("a name").to_owned());
                let from = &variable["valueFrom"];
                if let Some(secret) = from["secretKeyRef"]["name"].as_str() {
                    let key = from["secretKeyRef"]["key"].as_str().expect("a key");
                    let doc = secrets
                        .get(secret)
                        .unwrap_or_else(|| panic!("{what}: no Secret {secret}"));
                    assert!(key_exists(doc, key), "{what}: Secret {secret} has no {key}");
                }
                if let Some(map) = from["configMapKeyRef"]["name"].as_str() {
                    let key = from["configMapKeyRef"]["key"].as_str().expect("a key");
                    let doc = config_maps
                        .get(map)
                        .unwrap_or_else(|| panic!("{what}: no ConfigMap {map}"));
                    assert!(key_exists(doc, key), "{what}: ConfigMap {map} has no {key}");
                }
            }
            for mount in container["volumeMounts"].as_array().into_iter().flatten() {
                let volume = mount["name"].as_str().expect("a name");
                assert!(volumes.contains_key(volume), "{what}: no volume {volume}");
            }
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                let probe_doc = &container[probe];
                assert!(probe_doc.is_object(), "{what}: no {probe}");
                for kind in ["tcpSocket", "httpGet"] {
                    if let Some(port) = probe_doc[kind]["port"].as_str() {
                        assert!(ports.contains(port), "{what}: {probe} port {port}");
                    }
                }
                if let Some(service) = probe_doc["grpc"]["service"].as_str() {
                    assert!(
                        service.starts_with("motcua.v1."),
                        "{what}: {probe} checks {service}"
                    );
                }
            }
            for limit in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        !container["resources"][limit][resource].is_null(),
                        "{what}: no {limit}.{resource}"
                    );
                }
            }
            check_command(&what, &strings(&container["args"]), &env);
        }
    }
    for (_, service) in named("Service") {
        let name = service["metadata"]["name"].as_str().unwrap_or_default();
        let selector = service["spec"]["selector"].as_object().expect("a selector");
        let target = deployments
            .values()
            .find(|d| {
                let labels = &d["spec"]["template"]["metadata"]["labels"];
                selector.iter().all(|(k, v)| &labels[k] == v)
            })
            .unwrap_or_else(|| panic!("Service {name} selects no Deployment"));
        let ports: BTreeSet<String> = target["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        for port in service["spec"]["ports"].as_array().expect("ports") {
            if let Some(target_port) = port["targetPort"].as_str() {
                assert!(
                    ports.contains(target_port),
                    "Service {name}: no container port {target_port}"
                );
            }
        }
    }
    for (name, hpa) in named("HorizontalPodAutoscaler") {
        let target = hpa["spec"]["scaleTargetRef"]["name"]
            .as_str()
            .expect("a target");
        assert!(
            deployments.contains_key(target),
            "HPA {name}: no Deployment {target}"
        );
        assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    }
    let budgets = named("PodDisruptionBudget");
    assert!(!budgets.is_empty(), "disruption budgets");
    for (name, pdb) in budgets {
        let selector = pdb["spec"]["selector"]["matchLabels"]
            .as_object()
            .expect("a selector");
        let target = deployments.values().find(|d| {
            let labels = &d["spec"]["template"]["metadata"]["labels"];
            selector.iter().all(|(k, v)| &labels[k] == v)
        });
        let target = target.unwrap_or_else(|| panic!("PDB {name} selects no Deployment"));
        let replicas = target["spec"]["replicas"].as_i64().unwrap_or(1);
        let min = pdb["spec"]["minAvailable"].as_i64().unwrap_or(0);
        assert!(
            min < replicas,
            "PDB {name}: minAvailable {min} of {replicas} blocks every drain"
        );
    }
    assert!(
        !named("HorizontalPodAutoscaler").is_empty(),
        "the intake scales"
    );
}

#[test]
fn the_compose_file_parses_and_runs_real_commands() {
    let compose = documents(&deploy_dir().join("compose.yaml"));
    let compose = &compose[0];
    let services = compose["services"].as_object().expect("services");
    for wanted in [
        "postgres",
        "kafka",
        "intake",
        "relay",
        "projector",
        "deadlines",
        "portal-sync",
        "portal-sim",
    ] {
        assert!(services.contains_key(wanted), "compose runs {wanted}");
    }
    assert_eq!(
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"], "broker,controller",
        "Kafka in KRaft mode"
    );
    for (name, service) in services {
        for dependency in service["depends_on"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            assert!(
                services.contains_key(&dependency),
                "{name} depends on a missing {dependency}"
            );
        }
        for secret in strings(&service["secrets"]) {
            assert!(
                compose["secrets"].get(&secret).is_some(),
                "{name}: no secret {secret}"
            );
            if let Some(file) = compose["secrets"][&secret]["file"].as_str() {
                assert!(deploy_dir().join(file).exists(), "{name}: no file {file}");
            }
        }
        let uses_motcua = service["image"] == "motcua:dev";
        let entrypoint = strings(&service["entrypoint"]);
        if uses_motcua && entrypoint.is_empty() {
            let env: BTreeSet<String> = service["environment"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            check_command(
                &format!("compose {name}"),
                &strings(&service["command"]),
                &env,
            );
        }
    }
    let dockerfile =
        std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("deploy/Dockerfile");
    assert!(
        dockerfile.contains("USER 10001"),
        "the image runs as a non-root user"
    );
    assert!(
        dockerfile.matches("FROM ").count() >= 2,
        "a multi-stage build"
    );
}
