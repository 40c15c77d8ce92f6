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
