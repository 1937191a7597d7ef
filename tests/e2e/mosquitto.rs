//! Device mutual TLS with a broker we did not write: a second Mosquitto on a free port,
//! `require_certificate true`, Kizuna's CA chain and CRL, a broker certificate Kizuna issued.
//! A device that enrolled over EST publishes with `mosquitto_pub`; once it is retired in
//! Kizuna and the broker has the refreshed CRL, its connection is refused.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::enroll::{Installation, csr, stderr};
use crate::common::{Kizuna, free_port};

struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(conf: &Path, port: u16) -> Broker {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (apt-get install mosquitto)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker { child, port }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(broker: &Broker, root: &Path, device: &Path) -> std::process::Output {
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            "city/lamp/1",
            "-m",
            "on",
        ])
        .arg("--cafile")
        .arg(root)
        .arg("--cert")
        .arg(device.join("device.pem"))
        .arg("--key")
        .arg(device.join("device.key"))
        .output()
        .unwrap()
}

async fn crl_pem(i: &Installation, issuing: &str) -> String {
    reqwest::get(i.server.url(&format!("/pki/crl/{issuing}.pem")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_enrolled_device_reaches_mosquitto_until_it_is_retired() {
    for k in Kizuna::each_backend().await {
        let i = Installation::start(k).await;
        i.k.ok(&["org", "allow", "Streetlights", "--ip", "127.0.0.1/32"]);
        let dir = i.path("broker");
        csr(
            &dir,
            "broker",
            "/CN=broker",
            &["subjectAltName=IP:127.0.0.1"],
        );
        let broker_cert = i.k.ok(&[
            "cert",
            "issue",
            "--csr",
            dir.join("broker.der").to_str().unwrap(),
            "--profile",
            "service",
            "--org",
            "Streetlights",
        ]);
        std::fs::write(dir.join("broker.pem"), broker_cert).unwrap();

        i.add_device("sl-1", "SN-1");
        let device = i.enroll(
            "sl-1",
            &i.token(&["--device", "sl-1"]),
            "/CN=sl-1/serialNumber=SN-1",
        );
        let cacerts = i.device_script("cacerts", &dir, &[]);
        assert!(cacerts.status.success(), "{}", stderr(&cacerts));

        let cas = i.k.json(&["ca", "list", "--json"]);
        let issuing = cas
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "issuing" && c["status"] == "active")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let crl = dir.join("crl.pem");
        let before = crl_pem(&i, &issuing).await;
        std::fs::write(&crl, &before).unwrap();
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        // Started as root, mosquitto drops to its own user, which cannot read the test's files.
        std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous true\npersistence false\n\
             listener {port} 127.0.0.1\ncafile {ca}\ncertfile {d}/broker.pem\nkeyfile {d}/broker.key\n\
             require_certificate true\ncrlfile {crl}\n",
            ca = dir.join("ca.pem").display(),
            d = dir.display(),
            crl = crl.display(),
        ),
    )
    .unwrap();

        let broker = Broker::start(&conf, port);
        let ok = publish(&broker, &i.root, &device);
        assert!(ok.status.success(), "mosquitto_pub: {}", stderr(&ok));

        let retired = i.k.json(&["device", "retire", "sl-1", "--json"]);
        assert_eq!(retired["device"]["status"], "retired");
        assert_eq!(retired["certificates"].as_array().unwrap().len(), 1);
        // The server regenerates its CRLs shortly after a change; the broker reloads the file.
        let deadline = Instant::now() + Duration::from_secs(30);
        let after = loop {
            let now = crl_pem(&i, &issuing).await;
            if now != before {
                break now;
            }
            assert!(Instant::now() < deadline, "the CRL was not refreshed");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        std::fs::write(&crl, after).unwrap();
        drop(broker);
        let broker = Broker::start(&conf, port);
        let refused = publish(&broker, &i.root, &device);
        assert!(
            !refused.status.success(),
            "a retired device must not connect"
        );
    }
}
