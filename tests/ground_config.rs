//! Issue 2: `tern check-config` reports every mistake as `file:line:` and
//! exits 1; unknown keys come with the nearest known one; `tern config -n`
//! prints only what the file sets, like `postconf -n`.

mod common;
mod ground_support;

use common::process::run;
use common::tempdir::{write, TempDir};
use ground_support::{CMD_TIMEOUT, TERN};
use std::process::Command;

fn tern(args: &[&str]) -> common::process::RunOutput {
    let mut c = Command::new(TERN);
    c.args(args).env_remove("TERN_CONFIG");
    run(c, None, CMD_TIMEOUT)
}

#[test]
fn three_mistakes_three_errors_with_line_numbers() {
    let dir = TempDir::new("ground-cfg");
    let f = dir.join("three.conf");
    write(
        &f,
        "# three mistakes, on lines 3, 5 and 8\n\
         myhostname = mx.example.test\n\
         message_size_limt = 1000000\n\
         mynetworks = 127.0.0.0/8\n\
         maximal_queue_lifetime = 5 fortnights\n\
         relayhost = [smtp.example.test]:587\n\
         \x20   # a comment between settings\n\
         smtp_tls_security_level = bogus\n",
    );
    let path = f.display().to_string();
    let out = tern(&["check-config", "-c", &path]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let errs: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(errs.len(), 3, "exactly the three mistakes:\n{}", out.stderr);
    assert!(errs[0].starts_with(&format!("{path}:3: ")), "{}", errs[0]);
    assert!(errs[0].contains("message_size_limt"), "{}", errs[0]);
    assert!(
        errs[0].contains("did you mean \"message_size_limit\""),
        "nearest known key suggested: {}",
        errs[0]
    );
    assert!(errs[1].starts_with(&format!("{path}:5: ")), "{}", errs[1]);
    assert!(errs[1].contains("maximal_queue_lifetime"), "{}", errs[1]);
    assert!(errs[2].starts_with(&format!("{path}:8: ")), "{}", errs[2]);
    assert!(errs[2].contains("smtp_tls_security_level"), "{}", errs[2]);
    assert!(out.stdout.is_empty(), "{out:?}");

    // The daemon refuses the same file with the same errors.
    let run = tern(&["run", "-c", &path]);
    assert_eq!(run.status, Some(1), "{run:?}");
    assert_eq!(
        run.stderr.matches(&format!("{path}:")).count(),
        3,
        "{run:?}"
    );
}

#[test]
fn good_file_passes_and_config_n_prints_what_it_sets() {
    let dir = TempDir::new("ground-cfg");
    let f = dir.join("good.conf");
    write(
        &f,
        "# a router's file\n\
         mydomain = example.test\n\
         myhostname = mail.$mydomain\n\
         mynetworks = 127.0.0.0/8\n\
         \x20   192.168.1.0/24\n\
         message_size_limit = 20480000\n\
         mail_owner = nobody\n",
    );
    let path = f.display().to_string();
    let ok = tern(&["check-config", "-c", &path]);
    assert_eq!(ok.status, Some(0), "{ok:?}");

    let n = tern(&["config", "-n", "-c", &path]);
    assert_eq!(n.status, Some(0), "{n:?}");
    let lines: Vec<&str> = n.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "mail_owner = nobody",
            "message_size_limit = 20480000",
            "mydomain = example.test",
            "myhostname = mail.$mydomain",
            "mynetworks = 127.0.0.0/8 192.168.1.0/24",
        ],
        "only the settings the file makes, continuation joined:\n{}",
        n.stdout
    );

    // Without -n every parameter is printed, defaults included.
    let all = tern(&["config", "-c", &path]);
    assert_eq!(all.status, Some(0), "{all:?}");
    assert!(
        all.stdout.lines().count() > 4 * lines.len(),
        "{}",
        all.stdout
    );
    assert!(
        all.stdout.contains("\nqueue_directory = "),
        "{}",
        all.stdout
    );

    // TERN_CONFIG works like -c.
    let mut c = Command::new(TERN);
    c.args(["config", "-n"]).env("TERN_CONFIG", &f);
    let env = run(c, None, CMD_TIMEOUT);
    assert_eq!(env.stdout, n.stdout, "{env:?}");
}

#[test]
fn missing_file_is_an_error() {
    let dir = TempDir::new("ground-cfg");
    let f = dir.join("nope.conf").display().to_string();
    let out = tern(&["check-config", "-c", &f]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stderr.contains(&f), "names the file: {out:?}");
}

#[test]
fn check_config_loads_the_files_it_names() {
    let dir = TempDir::new("ground-cfg-files");
    let policy = dir.join("tls_policy");
    write(
        &policy,
        "example.com  strict\n.example.net verify match=mx.example.net\n[mx.example.org]:25 encrypt bogus=1\n",
    );
    let f = dir.join("files.conf");
    write(
        &f,
        format!(
            "queue_directory = {}\nsmtp_tls_policy_maps = texthash:{}\nsmtpd_tls_cert_file = {}\nmail_owner = nobody\n",
            dir.join("spool").display(),
            policy.display(),
            dir.join("missing.pem").display()
        ),
    );
    let path = f.display().to_string();
    let out = tern(&["check-config", "-c", &path]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let errs: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(errs.len(), 3, "{}", out.stderr);
    assert!(
        errs[0].starts_with(&format!("{path}:3: ")) && errs[0].contains("missing.pem"),
        "{}",
        errs[0]
    );
    let pol = policy.display().to_string();
    assert!(
        errs[1].contains(&format!("{pol}:1: invalid security level \"strict\"")),
        "{}",
        errs[1]
    );
    assert!(
        errs[2].contains(&format!("{pol}:3: ")) && errs[2].contains("bogus"),
        "{}",
        errs[2]
    );
}

/// The seed guide's Hostpoint tls_policy (../shared/seeds/tls-policy-guide.rst.txt),
/// as the file holds it: two keys without a value.
const HOSTPOINT_POLICY: &str = "\
# mx1.mail.hostpoint.ch.
[217.26.49.138]     secure match=*.mail.hostpoint.ch

# mx2.mail.hostpoint.ch.
[217.26.49.139]     secure match=*.mail.hostpoint.ch

# mx.hostpoint.ch.
[217.26.48.124]

# antargus.adm.hostpoint.ch.
[54.229.223.246]
";

/// Writes `text` plus the settings that point a Postfix main.cf at `dir`
/// (spool, listener, certificate, mailname, aliases, the Hostpoint table);
/// returns the file's path and the listener's port.
fn postfix_main_cf(dir: &TempDir, name: &str, text: &str) -> (String, u16) {
    let leaf = common::certs::self_signed(common::certs::KeyKind::EcdsaP256, &["mx.example.test"]);
    // The key and certificate live in the test's directory, like the
    // snakeoil pair main.cf.tls names.
    let cert = dir.join("ssl-cert-snakeoil.pem");
    let key = dir.join("ssl-cert-snakeoil.key");
    std::fs::copy(&leaf.chain, &cert).unwrap();
    std::fs::copy(&leaf.key, &key).unwrap();
    write(&dir.join("mailname"), "example.test\n");
    write(&dir.join("aliases"), "postmaster: root\n");
    write(&dir.join("tls_policy"), HOSTPOINT_POLICY);
    let port = common::ports::free_port();
    let d = |f: &str| dir.join(f).display().to_string();
    let text = text
        .replace(
            "/etc/ssl/certs/ssl-cert-snakeoil.pem",
            &d("ssl-cert-snakeoil.pem"),
        )
        .replace(
            "/etc/ssl/private/ssl-cert-snakeoil.key",
            &d("ssl-cert-snakeoil.key"),
        );
    let text = format!(
        "{text}\n# Debian's postinst adds these\n\
         myhostname = mx.example.test\n\
         alias_maps = hash:{aliases}\n\
         alias_database = hash:{aliases}\n\
         myorigin = {mailname}\n\
         mydestination = $myhostname, mx.example.test, localhost\n\
         relayhost =\n\
         mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n\
         mailbox_size_limit = 0\n\
         recipient_delimiter = +\n\
         inet_interfaces = loopback-only\n\
         inet_protocols = all\n\
         smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination\n\
         # the test's directory\n\
         queue_directory = {spool}\n\
         data_directory = {data}\n\
         smtp_tls_policy_maps = hash:{policy}\n\
         smtp_tls_CAfile = {cert}\n\
         mail_owner = nobody\n\
         smtp_listen = 127.0.0.1:{port}\n\
         syslog_socket =\n\
         maillog_file = {log}\n",
        aliases = d("aliases"),
        mailname = d("mailname"),
        spool = d("spool"),
        data = d("data"),
        policy = d("tls_policy"),
        cert = d("ssl-cert-snakeoil.pem"),
        log = d("maillog"),
    );
    let f = dir.join(name);
    write(&f, &text);
    (f.display().to_string(), port)
}

/// check-config passes with warnings only; every warning is one line.
fn passes_with_warnings(path: &str) -> Vec<String> {
    let out = tern(&["check-config", "-c", path]);
    assert_eq!(out.status, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), format!("{path}: ok"), "{out:?}");
    let lines: Vec<String> = out.stderr.lines().map(str::to_string).collect();
    for l in &lines {
        assert!(
            l.contains(": warning: "),
            "not a warning: {l}\n{}",
            out.stderr
        );
    }
    lines
}

/// `tern run -f -c FILE` starts with it (its listener answers), then stops.
fn daemon_starts(path: &str, port: u16) {
    let dir = TempDir::new("ground-cfg-run");
    let mut cmd = Command::new(TERN);
    cmd.args(["run", "-f", "-c", path])
        .env_remove("TERN_CONFIG");
    let mut d = common::process::Daemon::spawn("tern", cmd, &dir.join("tern.out"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !common::ports::wait_listening(port, std::time::Duration::from_millis(50)) {
        let exited = d.exited();
        assert!(
            exited.is_none() && std::time::Instant::now() < deadline,
            "tern did not start ({exited:?}): {}",
            common::tempdir::read_lossy(&dir.join("tern.out"))
        );
    }
    d.stop();
}

#[test]
fn debian_stock_main_cf_with_tls_and_the_hostpoint_table_loads_with_warnings() {
    let dir = TempDir::new("ground-cfg-debian");
    let stock = std::fs::read_to_string("/usr/share/postfix/main.cf.debian").unwrap()
        + &std::fs::read_to_string("/usr/share/postfix/main.cf.tls").unwrap();
    let (path, port) = postfix_main_cf(&dir, "main.cf", &stock);
    let w = passes_with_warnings(&path);
    let text = w.join("\n");
    for name in [
        "biff",
        "append_dot_mydomain",
        "readme_directory",
        "compatibility_level",
        "smtp_tls_CApath",
        "smtp_tls_session_cache_database",
        "alias_database",
        "recipient_delimiter",
        "smtpd_relay_restrictions",
    ] {
        assert_eq!(
            w.iter()
                .filter(|l| l.contains(&format!(": warning: {name} = ")))
                .count(),
            1,
            "one warning for {name}:\n{text}"
        );
    }
    // The Hostpoint lines without a value: skipped, their keys deferred.
    let pol = dir.join("tls_policy").display().to_string();
    assert!(
        text.contains(&format!("warning: {pol}:8: expected format: key whitespace value -- ignoring this line; mail for \"[217.26.48.124]\" is deferred")),
        "{text}"
    );
    assert!(text.contains(&format!("warning: {pol}:11: ")), "{text}");
    // The session cache path shows $data_directory expanded (the warning
    // shortens long values to 60 characters).
    assert!(
        text.contains(&format!("btree:{}", dir.join("data").display())),
        "{text}"
    );
    // myorigin came from the file; the banner names tern (`config -d`
    // prints the values in effect).
    let n = tern(&["config", "-d", "-c", &path]);
    assert!(
        n.stdout.contains("\nmyorigin = example.test\n"),
        "{}",
        n.stdout
    );
    assert!(
        n.stdout
            .contains("\nsmtpd_banner = mx.example.test ESMTP tern (Debian/GNU)\n"),
        "{}",
        n.stdout
    );
    daemon_starts(&path, port);
}

#[test]
fn an_administrators_hardened_main_cf_loads_with_warnings() {
    let dir = TempDir::new("ground-cfg-admin");
    let admin = "\
smtpd_banner = $myhostname ESMTP
biff = no
compatibility_level = 3.6
smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key
smtpd_tls_security_level = may
smtpd_tls_dh1024_param_file = /etc/ssl/dhparams.pem
smtpd_tls_eecdh_grade = strong
smtpd_tls_mandatory_ciphers = high
smtpd_tls_ciphers = high
smtpd_tls_mandatory_protocols = !SSLv2, !SSLv3, !TLSv1, !TLSv1.1
smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache
tls_preempt_cipherlist = yes
tls_ssl_options = NO_RENEGOTIATION
smtp_tls_security_level = may
smtp_tls_CApath = /etc/ssl/certs
smtp_tls_servername = hostname
smtp_tls_connection_reuse = yes
smtp_tls_loglevel = 1
smtp_sasl_auth_enable = no
smtp_sasl_security_options = noanonymous
";
    let (path, port) = postfix_main_cf(&dir, "admin.cf", admin);
    let w = passes_with_warnings(&path);
    let text = w.join("\n");
    for name in [
        "smtpd_tls_dh1024_param_file",
        "smtpd_tls_eecdh_grade",
        "smtpd_tls_mandatory_ciphers",
        "smtpd_tls_ciphers",
        "smtpd_tls_session_cache_database",
        "tls_preempt_cipherlist",
        "tls_ssl_options",
        "smtp_tls_CApath",
        "smtp_tls_servername",
        "smtp_tls_connection_reuse",
        "smtp_sasl_security_options",
    ] {
        assert_eq!(
            w.iter()
                .filter(|l| l.contains(&format!(": warning: {name} = ")))
                .count(),
            1,
            "one warning for {name}:\n{text}"
        );
    }
    daemon_starts(&path, port);

    // A setting that would weaken security if ignored is still an error,
    // and so is an unknown name (with the nearest Postfix name).
    let bad = dir.join("bad.cf");
    write(
        &bad,
        format!(
            "{}smtp_tls_trust_anchor_file = /etc/postfix/ta.pem\nsmtp_tls_sessoin_cache_timeout = 3600s\n",
            std::fs::read_to_string(&path).unwrap()
        ),
    );
    let out = tern(&["check-config", "-c", &bad.display().to_string()]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("smtp_tls_trust_anchor_file = /etc/postfix/ta.pem: not supported: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("unknown parameter \"smtp_tls_sessoin_cache_timeout\"; did you mean \"smtp_tls_session_cache_timeout\"?"), "{}", out.stderr);
}

#[test]
fn an_indented_table_is_refused_and_a_missing_ca_file_at_secure_too() {
    let dir = TempDir::new("ground-cfg-indented");
    // The guide's literal block copied with its indentation: every line
    // continues a line that never started, so nothing loads.
    let policy = dir.join("tls_policy");
    let indented: String = HOSTPOINT_POLICY
        .lines()
        .take(5)
        .map(|l| format!("    {l}\n"))
        .collect();
    write(&policy, &indented);
    let f = dir.join("t.conf");
    write(
        &f,
        format!(
            "queue_directory = {}\nsmtp_tls_policy_maps = texthash:{}\nmail_owner = nobody\n",
            dir.join("spool").display(),
            policy.display()
        ),
    );
    let out = tern(&["check-config", "-c", &f.display().to_string()]);
    assert_eq!(out.status, Some(1), "{out:?}");
    let pol = policy.display().to_string();
    assert!(
        out.stderr.contains(&format!(
            "warning: {pol}:2: logical line must not start with whitespace"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "{pol}: smtp_tls_policy_maps: no usable entry although the file is not empty"
        )),
        "{}",
        out.stderr
    );

    // Dedented it loads; with no CA file, its secure entries cannot work.
    write(&policy, HOSTPOINT_POLICY);
    let missing = dir.join("no-ca.pem").display().to_string();
    write(
        &f,
        format!(
            "queue_directory = {}\nsmtp_tls_policy_maps = texthash:{}\nmail_owner = nobody\nsmtp_tls_CAfile = {missing}\n",
            dir.join("spool").display(),
            policy.display()
        ),
    );
    let out = tern(&["check-config", "-c", &f.display().to_string()]);
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(
        out.stderr.contains(&format!("smtp_tls_CAfile: {missing}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("needed by {pol}:2 ([217.26.49.138] secure)")),
        "{}",
        out.stderr
    );
}
