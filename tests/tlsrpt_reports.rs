//! Issue 12, tern's own TLSRPT reports against real peers: the daemon
//! starts with a checkpoint of today's counters (as a previous run would
//! have left it: two policy domains, one reporting by mail to the lab's
//! Postfix, one by HTTPS to a receiver in this test, plus an unknown
//! scheme), `tern tlsrpt show` prints them, `tern tlsrpt send --now`
//! makes the daemon send the reports. The mail is checked in Postfix's
//! Maildir (headers, DKIM with dkimpy, the gzip attachment's JSON field by
//! field); the POST body is gunzipped by `gzip -d` and checked too.
//!
//! Uses the MTA-STS lab (DNS, Postfix MX for example.test; MTA-STS off).

mod common;
mod dane_common;
mod mtasts_common;
mod tlsrpt_common;

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};

use common::certs::KeyKind;
use mtasts_common::{zone_records, Lab, DOMAIN, STS_OFF, WAIT};
use tlsrpt_common::{gunzip, https_receiver};

const POST_HOST: &str = "report.example.test";

/// The report JSON must carry every RFC 8460 §4.4 field for `domain`.
fn check_json(json: &str, domain: &str) {
    for needle in [
        "\"organization-name\":\"Tern Test Router\"".to_string(),
        "\"date-range\":{\"start-datetime\":\"".into(),
        "\"end-datetime\":\"".into(),
        "\"contact-info\":\"tlsrpt-admin@client.test\"".into(),
        "\"report-id\":\"".into(),
        format!("\"policy-domain\":\"{domain}\""),
        "\"total-successful-session-count\":".into(),
        "\"total-failure-session-count\":".into(),
    ] {
        assert!(json.contains(&needle), "{needle} missing in {json}");
    }
}

#[test]
fn reports_by_mail_and_https() {
    let mut lab = Lab::start("version: STSv1\nmode: none\nmax_age: 86400\n");
    // The HTTPS receiver's name in the lab's zone.
    let post_leaf = lab.ca.server_cert(KeyKind::EcdsaP256, &[POST_HOST]);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let post_port = listener.local_addr().unwrap().port();
    let posts = https_receiver(listener, &post_leaf.chain, &post_leaf.key);
    let zone = format!(
        "{}report IN A 127.0.0.1\n",
        zone_records(lab.sts.ip, &lab.id)
    );
    lab.dns.update_zone(DOMAIN, &zone);

    // A DKIM key (RSA) for the report messages.
    let keydir = common::tempdir::TempDir::new("tlsrpt-dkim");
    let keyf = keydir.join("dkim.pem");
    assert!(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out"
        ])
        .arg(&keyf)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    let pubder = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&keyf)
        .output()
        .unwrap()
        .stdout;

    let mut tern = lab.tern(&format!(
        "{STS_OFF}\nsmtp_tlsrpt_enable = yes\n\
         smtp_tlsrpt_organization_name = Tern Test Router\n\
         smtp_tlsrpt_contact_info = tlsrpt-admin@client.test\n\
         smtp_tlsrpt_report_sender = tlsrpt-noreply@client.test\n\
         smtp_tlsrpt_dkim_key_file = {}\n\
         smtp_tlsrpt_dkim_selector = sel\n",
        keyf.display()
    ));
    // Today's counters as a previous run left them; the daemon reads
    // them at start.
    let spool = tern.conf.parent().unwrap().join("spool");
    let dir = spool.join("tlsrpt");
    std::fs::create_dir_all(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = now - now % 86_400;
    let checkpoint = format!(
        "tern-tlsrpt-counters 1\nstart\t{today}\n\
         D\t{DOMAIN}\tmailto:tlsrpt@{DOMAIN}\tftp://odd.example/\n\
         P\tsts\t5\t2\t2\tversion: STSv1\tmode: enforce\tmx.{DOMAIN}\n\
         F\tcertificate-expired\t2\t127.0.0.1\tmx.{DOMAIN}\t127.0.0.1\tmx\"evil\t\n\
         D\tpost.test\thttps://{POST_HOST}:{post_port}/tlsrpt\n\
         P\tno-policy-found\t0\t1\t0\n\
         F\tstarttls-not-supported\t1\t127.0.0.1\tmx.post.test\t192.0.2.1\t\t\n"
    );
    std::fs::write(dir.join("counters"), &checkpoint).unwrap();
    let nobody = 65534;
    std::os::unix::fs::chown(&dir, Some(nobody), Some(nobody)).unwrap();
    std::os::unix::fs::chown(dir.join("counters"), Some(nobody), Some(nobody)).unwrap();
    tern.restart();

    let show = tern.command(&["tlsrpt", "show"]);
    assert!(show.success(), "{}", show.combined());
    assert!(
        show.stdout
            .contains(&format!("domain {DOMAIN} rua=mailto:tlsrpt@{DOMAIN}")),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout
            .contains("policy sts mx=mx.example.test: successful=5 failed=2"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("certificate-expired x2"),
        "{}",
        show.stdout
    );

    let messages = lab.pf.messages().len();
    let send = tern.command(&["tlsrpt", "send", "--now"]);
    assert!(send.success(), "{}", send.combined());

    // HTTPS: the POST arrives with the gzip JSON.
    let req = posts
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("no POST\n{}", tern.log()));
    let h = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&req[..h]).to_string();
    assert!(head.starts_with("POST /tlsrpt HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: application/tlsrpt+gzip"),
        "{head}"
    );
    let json = gunzip(&req[h + 4..]);
    check_json(&json, "post.test");
    assert!(
        json.contains(
            "\"policy\":{\"policy-type\":\"no-policy-found\",\"policy-domain\":\"post.test\"}"
        ),
        "{json}"
    );
    assert!(json.contains("\"result-type\":\"starttls-not-supported\",\"sending-mta-ip\":\"127.0.0.1\",\"receiving-mx-hostname\":\"mx.post.test\",\"receiving-ip\":\"192.0.2.1\",\"failed-session-count\":1"), "{json}");
    tern.wait_line(&["TLSRPT: report", "domain=post.test", "HTTP 200"]);

    // Mail: queued, signed, delivered to the MX.
    let queued = tern.wait_line(&[
        "TLSRPT: report",
        "queued as",
        "DKIM-signed (rsa-sha256 s=sel d=client.test)",
    ]);
    assert!(
        queued.contains(&format!("to <tlsrpt@{DOMAIN}>")),
        "{queued}"
    );
    tern.wait_line(&["ftp://odd.example/", "unsupported scheme"]);
    lab.pf.wait_for_message(messages + 1, WAIT);
    let msg = lab.pf.messages().pop().unwrap();
    let text = String::from_utf8_lossy(&msg).to_string();
    for needle in [
        format!("Subject: Report Domain: {DOMAIN}"),
        "Submitter: client.test".to_string(),
        format!("TLS-Report-Domain: {DOMAIN}"),
        "TLS-Report-Submitter: client.test".into(),
        "TLS-Required: No".into(),
        "multipart/report; report-type=\"tlsrpt\"".into(),
        "Content-Type: application/tlsrpt+gzip".into(),
        format!("filename=\"client.test!{DOMAIN}!{today}!"),
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=client.test; s=sel;".into(),
    ] {
        assert!(text.contains(&needle), "{needle} missing in\n{text}");
    }
    // dkimpy checks the signature against the public key.
    let msgf = keydir.join("m.eml");
    std::fs::write(&msgf, &msg).unwrap();
    let script = format!(
        "import dkim,sys\nrec=b'v=DKIM1; k=rsa; p={}'\nm=open(sys.argv[1],'rb').read()\nsys.exit(0 if dkim.verify(m, dnsfunc=lambda n, timeout=5: rec) else 1)",
        tern::base64::encode(&pubder)
    );
    if Command::new("/usr/bin/python3")
        .args(["-c", "import dkim"])
        .status()
        .is_ok_and(|s| s.success())
    {
        let st = Command::new("/usr/bin/python3")
            .args(["-c", &script])
            .arg(&msgf)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "dkimpy rejected the report's signature\n{text}"
        );
    }
    // The attachment: base64 lines after the part's blank line.
    let part = text
        .split("Content-Type: application/tlsrpt+gzip")
        .nth(1)
        .unwrap();
    let b64: String = part
        .split("\r\n\r\n")
        .nth(1)
        .or_else(|| part.split("\n\n").nth(1))
        .unwrap()
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect();
    let gz = tern::base64::decode(b64.trim()).unwrap();
    let json = gunzip(&gz);
    check_json(&json, DOMAIN);
    assert!(json.contains("\"policy-type\":\"sts\",\"policy-string\":[\"version: STSv1\",\"mode: enforce\"],\"policy-domain\":\"example.test\",\"mx-host\":[\"mx.example.test\"]"), "{json}");
    assert!(
        json.contains("\"total-successful-session-count\":5,\"total-failure-session-count\":2"),
        "{json}"
    );
    assert!(
        json.contains("\"receiving-mx-helo\":\"mx\\\"evil\""),
        "{json}"
    );

    // The period ended: the counters start again empty.
    let show = tern.command(&["tlsrpt", "show"]);
    assert!(
        show.stdout.contains("no TLS sessions counted"),
        "{}",
        show.stdout
    );
}
