#!/usr/bin/env python3
"""Writes the seed corpus fuzz/corpus/TARGET/ (checked in; scripts/fuzz-ci.sh
starts every target from it). Each seed is a small input taken from the
unit and integration tests or the documented formats, so a short CI run
starts past the parsers' first gates. Run from the repository root:

    python3 fuzz/seeds.py

Keep it small: a few KiB per target. New inputs libFuzzer finds in CI go to
a scratch directory, not here.
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
SEEDS = {}


def seed(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    SEEDS.setdefault(target, []).append((name, data))


def read(path):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(here, path), "rb") as f:
        return f.read()


# --- config
seed("config_parse", "basic", "myhostname = nas.example.org\nmydomain = example.org\n"
     "myorigin = $mydomain\nmydestination = $myhostname, localhost.$mydomain\n"
     "smtp_listen = 127.0.0.1:25 [::1]:25\nsubmission_listen = 0.0.0.0:587\n"
     "inet_protocols = ipv4, ipv6\ninet_interfaces = loopback-only\n"
     "relayhost = [smtp.example.net]:587\nmax_connections = 16\n")
seed("config_parse", "continuation", "smtp_tls_policy_maps =\n  texthash:/etc/tern/tls_policy\n"
     "  socketmap:inet:127.0.0.1:8461:postfix\n# comment\nmynetworks = 127.0.0.0/8 [::1]/128\n"
     "x = ${mydomain:default} $(myhostname)\n")
seed("dns_resolv_conf", "resolv", "# generated\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"
     "search example.org\noptions edns0 trust-ad timeout:2\n")
seed("dns_resolv_conf", "list", "127.0.0.1:5353 [::1]:53 192.0.2.1")

# --- DNS replies (RFC 1035 wire format)
def name(n):
    out = b""
    for label in n.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def reply(qname, qtype, answers, flags=0x81A0):
    head = struct.pack(">HHHHHH", 0x1234, flags, 1, len(answers), 0, 1)
    q = name(qname) + struct.pack(">HH", qtype, 1)
    body = b""
    for rtype, rdata in answers:
        body += b"\xc0\x0c" + struct.pack(">HHIH", rtype, 1, 300, len(rdata)) + rdata
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)
    return head + q + body + opt


seed("dns_reply", "mx", reply("example.org", 15, [
    (15, struct.pack(">H", 10) + name("mx1.example.org")),
    (15, struct.pack(">H", 20) + b"\x03mx2\xc0\x0c"),
]))
seed("dns_reply", "a", reply("mx.example.org", 1, [(1, bytes([192, 0, 2, 7]))]))
seed("dns_reply", "tlsa", reply("_25._tcp.mx.example.org", 52, [
    (52, bytes([3, 1, 1]) + bytes(range(32))),
]))
seed("dns_reply", "nxdomain", struct.pack(">HHHHHH", 0x1234, 0x8183, 1, 0, 0, 0)
     + name("nothing.example.org") + struct.pack(">HH", 15, 1))

# --- local delivery
seed("local_aliases", "aliases", "# aliases(5)\npostmaster: root\nroot: admin@example.org, \\root\n"
     "list: :include:/etc/tern/list\nbackup: |/usr/bin/backup-notify\nlog: /var/log/mail.copy\n"
     "admin: alice,\n  bob\n")
seed("local_headers", "message", b"\x07From: alice\r\nTo: bob, carol@box.test\r\nSubject: hi\r\n"
     b" folded\r\nCc: <dave>\r\n\r\nbody\r\n")
seed("local_headers", "noheaders", b"\x40\r\nbody only\r\n")
seed("local_maildir", "message", b"Return-Path: <a@b>\r\nDelivered-To: alice@box.test\r\n"
     b"Subject: x\r\n\r\nline\r\n\r\n")
seed("local_rewrite", "list", "Alice <alice>, bob@box.test, \"C, D\" <c@sub.box.test>, (comment) e@keep.box.test")
seed("local_wire", "request", b"Q\0\0")
seed("local_wire", "reply-t", b"T\0\0\0\x01\0\0\0\x02\xff\xfe")
seed("local_wire", "reply-x", b"X\0\0\0\x01\0\0\0\0")

# --- queue
seed("maildrop", "drop", "tern-maildrop 1\nflags extract\nsender root@nas.example\n"
     "rcpt admin@example.org\nend\nSubject: x\n\nbody\n")
seed("spool_envelope", "queue-file", "tern-queue-file 1\nid 0BADD098E3E1\narrival 1700766169\n"
     "size 00000000000000000016\nclient mail.example[192.0.2.1]\nsender root@nas.example\n"
     "rcpt admin@example.org\trfc822;Admin@example.org\nend\nReceived: x\r\n\r\nbody\r\n")
seed("spool_envelope", "checked", "tern-queue-file 1\nid 0BADD098E3E2\narrival 1700766169\n"
     "size 00000000000000000016\ncheck 5c3a9e01\nflags tls-required-no\nclient local\n"
     "sender root@nas.example\nrcpt admin@example.org\nend\nReceived: x\r\n\r\nbody\r\n")
seed("spool_envelope", "unfinished", "tern-queue-file 1\nid 0BADD098E3E3\narrival 1700766169\n"
     "size 00000000000000000000\ncheck --------\nclient local\nsender \nrcpt a@b.example\nend\n")
seed("memtrim_smaps", "smaps", "55d0a0000000-55d0a0100000 r--p 00000000 fd:01 123 /x\n"
     "Size:               1024 kB\nAnonymous:             0 kB\n"
     "55d0a0100000-55d0a0300000 r-xp 00100000 fd:01 123 /x\nAnonymous:             0 kB\n"
     "55d0a0300000-55d0a0310000 r--p 00300000 fd:01 123 /x\nAnonymous:            64 kB\n"
     "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]\nAnonymous:           132 kB\n")
seed("spool_envelope", "bounce", "tern-queue-file 1\nid 0BADD0000002\narrival 1700766169\n"
     "size 00000000000000000000\nflags bounce double-bounce\norigin 0BADD0000001\nclient local\n"
     "sender \nrcpt postmaster@nas.example\nend\n")
seed("sendmail_headers", "headers", b"\x01From: root\nTo: admin@example.org, \"A B\" <ab@example.org>\n"
     b"Subject: smartd\n  warning\n\nbody\n")

# --- MTA-STS
seed("mtasts_http", "content-length", b"\x10HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
     b"Content-Length: 69\r\n\r\nversion: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n")
seed("mtasts_http", "chunked", b"\x07HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"10\r\nversion: STSv1\nm\r\n0\r\n\r\n")
seed("mtasts_http", "close", b"\x40HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nversion: STSv1\nmode: testing\n")
seed("mtasts_policy", "enforce", "version: STSv1\nmode: enforce\nmx: mx1.example.org\nmx: *.example.net\nmax_age: 604800\n")
seed("mtasts_policy", "crlf", "version: STSv1\r\nmode: testing\r\nmx: *.example.org\r\nmax_age: 86400\r\n")
seed("mtasts_record", "record", "v=STSv1; id=20261207T120000;")
seed("mtasts_record", "two", b"v=STSv1; id=abc123;\0v=spf1 -all")

# --- policy
seed("policy_answer", "sts", "OK secure match=mx1.example.org:.example.net servername=hostname "
     "policy_type=sts policy_domain=example.org policy_ttl=86400 "
     "{ policy_string = version: STSv1 } { policy_string = mode: enforce } mx_host_pattern=*.example.org")
seed("policy_answer", "dane", "dane-only protocols=>=TLSv1.2 ciphers=high")
seed("policy_ciphers", "exclude", "aNULL:eNULL:ECDHE-RSA-AES128-GCM-SHA256, TLS_AES_128_GCM_SHA256")
seed("policy_ciphers", "grade", "high")
seed("policy_table", "table", "# tls_policy\n[smtp.example.net]:587 secure match=nexthop:dot-nexthop\n"
     "example.org encrypt protocols=!SSLv2,!SSLv3\n.example.org verify ciphers=high\n"
     "[192.0.2.7]:25 fingerprint match=3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1\n"
     "dane.example dane-only\n")
seed("policy_transport_map", "transport", "example.org smtp:[mx.example.org]:25\n"
     ".example.org smtp:[192.0.2.7]\nlocal.test local:\nbad.test error:5.1.1 no such domain\n"
     "[smtp.example.net]:587 alice:secret\n* smtp:[relay.example.net]:2525\n")
seed("table_specs", "list", "texthash:/etc/tern/tls_policy, inline:{ { a.example = encrypt }, b.example=may }"
     " static:secure socketmap:inet:127.0.0.1:8461:postfix")
seed("socketmap_netstring", "reply", b"\x0a28:OK secure match=mx.example.org,")
seed("socketmap_netstring", "notfound", b"\x03" + b"8:NOTFOUND,")

# --- SMTP
seed("smtp_command", "mail", "MAIL FROM:<alice@example.org> SIZE=1024 BODY=8BITMIME SMTPUTF8")
seed("smtp_command", "rcpt", "RCPT TO:<\"bob smith\"@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org")
seed("smtp_command", "ehlo", "EHLO [192.0.2.1]")
seed("smtp_command", "auth", "AUTH PLAIN AGFsaWNlAHdyb25n")
seed("smtp_data", "body", b"\x05\x40Subject: x\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n")
seed("smtp_data", "smuggle", b"\x03\x10body\n.\r\nMAIL FROM:<e@x>\r\n\r\n.\r\n")
seed("smtp_dotstuff", "dots", b".leading\r\n..two\r\nmiddle . dot\r\n.\r\nend")
seed("smtp_reply", "ehlo", b"250-mx.example.org Hello\n250-PIPELINING\n250-SIZE 10240000\n250-STARTTLS\n"
     b"250-AUTH PLAIN LOGIN\n250 8BITMIME\n")
seed("smtp_reply", "errors", b"421 4.3.2 Service shutting down\n550-5.1.1 no\n550 5.1.1 such user\n")
seed("smtp_client_session", "starttls", b"\x01220 mx.example.org ESMTP\n250-mx.example.org\n250-STARTTLS\n"
     b"250 PIPELINING\n220 2.0.0 Ready to start TLS\n250-mx.example.org\n250 AUTH PLAIN\n"
     b"250 2.1.0 Ok\n250 2.1.5 Ok\n354 go\n250 2.0.0 queued\n221 Bye\n")
seed("smtp_client_session", "auth", b"\x21220 smtp.example.net ESMTP\n250-smtp.example.net\n250 AUTH PLAIN LOGIN\n"
     b"235 2.7.0 ok\n250 Ok\n452 4.5.3 too many\n250 Ok\n354 go\n550 5.7.1 no\n")
seed("smtp_server_session", "session", b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
     b"RCPT TO:<b@localhost>\r\nRCPT TO:<c@remote.example>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
     b"RSET\r\nNOOP\r\nVRFY x\r\nQUIT\r\n")
seed("smtp_server_session", "tls-auth", b"EHLO c\r\nSTARTTLS\r\nEHLO c\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\n"
     b"AUTH LOGIN\r\nYWxpY2U=\r\n*\r\nBDAT 5 LAST\r\nhello")
seed("smtpd_passwd", "passwd", "# tern passwd\nalice:$pbkdf2-sha256$i=10$c2FsdHNhbHQ$"
     "qmvP9a3Ku7qb3wM1HCa7xEO2Nf3Jx5b4yJwQ6q8yY2c\nbob:$pbkdf2-sha256$i=2$YWJj$YWJjZGVm\n")
seed("syslog_format", "line", struct.pack("<qiB", 1765111234, 3600, 7)
     + "smtpd              0BADD098E3E1: client=localhost[127.0.0.1] ünï".encode())
seed("syslog_format", "control", struct.pack("<qiB", -1, -3600, 255) + b"qmgr\x00\x1b[31m\r\nline\ttab")

# --- TLS
seed("tls_fingerprint", "sha256", "3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:"
     "3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1")
seed("tls_fingerprint", "curves", "X25519MLKEM768 X25519 prime256v1 secp384r1")
seed("probe_names", "args", "-l secure -m nexthop:dot-nexthop -P /etc/ssl/certs [mx.example.org]:25")
seed("probe_names", "cn", b"CN=mx.example.org,O=Example\xc3\xa9")
for f in ["ca", "mx", "wrong"]:
    seed("tls_spki", f, read(f"src/tls/testdata/{f}.spki.der"))
for f in ["ca", "mx", "nexthop"]:
    seed("x509_fields", f, read(f"src/tls/testdata/{f}.der"))


def main():
    for target, files in sorted(SEEDS.items()):
        d = os.path.join(ROOT, target)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            os.remove(os.path.join(d, old))
        for n, data in files:
            with open(os.path.join(d, n), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
