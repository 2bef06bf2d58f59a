//! `create` on a libvirt host reached over ssh: the ISOs of this machine
//! sent once into the host's images directory (checked there by SHA-256,
//! then named by it), found there the next time, and the disk made by
//! libvirt on the host (`vol-create-as`). The fake ssh keeps what it is
//! sent and hashes it as `sha256sum` on the host would.

use crate::harness::{Run, World, argv, fixture, has_args, mentions};
use crate::remote::{URI, calls, host_shell, world};

/// The script that sends a file over ssh (`send_new`)...
const SEND: &str = "* -T -- 127.0.0.1 umask 077; set -C; *cat >> *";
/// ...and the fake's answer: what it is sent is kept under the name it was
/// sent to (the script is ssh's 20th argument).
const KEEP_SENT: &str = "eval \"p=$(/usr/bin/printf '%s' \"${20}\" | /usr/bin/sed 's/.*cat >> //; s/ && chmod.*//')\"\n\
     /bin/cat >\"$FAKE_DIR/uploads/${p##*/}\"\n";

/// A remote host with libvirt up, nothing on it yet but the images
/// directory; every write over ssh lands in `$FAKE_DIR/uploads/`.
fn host() -> World {
    let w = world();
    w.libvirt_up().domains(&[]);
    std::fs::create_dir_all(w.path("uploads")).unwrap();
    let images = w.p("images");
    w.rule(
        "ssh",
        &format!("* -T -- 127.0.0.1 stat -L -c * -- {images}"),
    )
    .recorded("ssh/stat-dir");
    // A medium is on the host when the fake keeps it.
    w.rule("ssh", "* -T -- 127.0.0.1 stat -L -c * -- */bkt-media-*")
        .sh("eval \"set -- ${20}\"; eval \"p=\\${$#}\"\n\
             f=\"$FAKE_DIR/uploads/${p##*/}\"\n\
             [ -e \"$f\" ] && { /usr/bin/stat -c '%f %s %u %g' \"$f\"; exit 0; }\n")
        .recorded("ssh/stat-missing");
    w.rule("ssh", "* -T -- 127.0.0.1 stat -L -c * -- *")
        .recorded("ssh/stat-missing");
    w.rule("ssh", "* -T -- 127.0.0.1 test -w *");
    // sha256sum and mv work on what was kept.
    w.rule("ssh", SEND).sh(KEEP_SENT);
    w.rule("ssh", "* -T -- 127.0.0.1 sha256sum -- *")
        .sh("eval \"set -- ${20}\"\n\
         /usr/bin/sha256sum \"$FAKE_DIR/uploads/${3##*/}\" | /usr/bin/sed \"s|  .*|  $3|\"\n");
    w.rule("ssh", "* -T -- 127.0.0.1 mv -f -T -- * *")
        .sh("eval \"set -- ${20}\"\n\
         /bin/mv \"$FAKE_DIR/uploads/${5##*/}\" \"$FAKE_DIR/uploads/${6##*/}\"\n");
    w.rule("ssh", "* -T -- 127.0.0.1 rm *")
        .sh("eval \"set -- ${20}\"; eval \"p=\\${$#}\"\n\
         /bin/rm -f \"$FAKE_DIR/uploads/${p##*/}\"\n");
    // The pools as recorded, the `images` pool's directory the fake's.
    w.rule("virsh", "-q * pool-list --uuid")
        .recorded("virsh/pool-list-uuid");
    w.rule("virsh", "* echo @@bkt *; pool-dumpxml *")
        .out(&fixture("virsh/batch-pool-dumpxml.txt").replace("/var/lib/libvirt/images", &images))
        .err(&fixture("virsh/batch-pool-dumpxml.err"))
        .code(1);
    w.rule("virsh", "* pool-refresh images")
        .recorded("virsh/pool-refresh");
    w.rule(
        "virsh",
        "* vol-create-as images windows.qcow2 2147483648 --format qcow2",
    )
    .recorded("virsh/vol-create-as-qcow2");
    w.rule("virsh", "* vol-dumpxml *")
        .recorded("virsh/vol-dumpxml-qcow2");
    w.rule("virt-install", "* --print-xml --dry-run")
        .out(&fixture("virt-install/print-xml-windows-qemu.xml"));
    w.rule("virsh", "* define /dev/stdin")
        .out(&fixture("virsh/define-stdin.txt"));
    w.rule("virsh", "* start * --reset-nvram")
        .out(&fixture("virsh/start-reset-nvram.txt"));
    w
}

fn create(w: &World, iso: &str, virtio: &str) -> Run {
    create_with(w, URI, iso, virtio, "2G")
}

fn create_with(w: &World, uri: &str, iso: &str, virtio: &str, size: &str) -> Run {
    create_from(w, uri, &["--iso", iso, "--virtio-iso", virtio], size)
}

/// `create` over `uri` from `media` (the ISO options), of a `size` disk,
/// under software emulation, asking nothing.
fn create_from(w: &World, uri: &str, media: &[&str], size: &str) -> Run {
    w.bkt(&create_words(uri, media, size))
}

/// The words of [`create_from`].
fn create_words<'a>(uri: &'a str, media: &[&'a str], size: &'a str) -> Vec<&'a str> {
    let head = ["vm", "-c", uri, "create"];
    let tail = ["--virt-type", "qemu", "--disk-size", size, "--yes"];
    [&head[..], media, &tail].concat()
}

/// The install ISO and a virtio ISO that differs from it.
fn isos(w: &World) -> (String, String) {
    let iso = w.iso("Win 11.iso");
    let virtio = w.iso("virtio-win.iso");
    let mut data = std::fs::read(&virtio).unwrap();
    data[0] = b'v';
    std::fs::write(&virtio, data).unwrap();
    (iso, virtio)
}

fn sha256(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The name a medium has on the host: the start of its SHA-256, then its
/// own name with what a tool might misread replaced.
fn on_host(local: &str, plain: &str) -> String {
    format!("bkt-media-{}-{plain}", &sha256(local)[..16])
}

/// What the fake host holds, by name.
fn uploads(w: &World) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(w.path("uploads"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The first call holding `args` as consecutive arguments.
fn position<S: AsRef<str> + std::fmt::Debug>(calls: &[Vec<String>], args: &[S]) -> usize {
    calls
        .iter()
        .position(|c| has_args(c, args))
        .unwrap_or_else(|| panic!("no call with {args:?} in {calls:#?}"))
}

/// The line a call has the host's shell run over ssh: the one argument
/// after the host (ssh's 20th, as the fake's rules expect).
fn script(c: &[String]) -> Option<&str> {
    (c[0] == "ssh" && c.len() == 21 && c[18] == "--" && c[19] == "127.0.0.1")
        .then(|| c[20].as_str())
}

/// The first call whose line for the host's shell holds `text`.
fn run_there(calls: &[Vec<String>], text: &str) -> usize {
    calls
        .iter()
        .position(|c| script(c).is_some_and(|s| s.contains(text)))
        .unwrap_or_else(|| panic!("no line for the host with {text:?} in {calls:#?}"))
}

/// Whether a call runs `word`: an argument that is it, or holds it as a
/// word (a line for the host's shell).
fn runs(c: &[String], word: &str) -> bool {
    c.iter().any(|a| {
        a.split(|ch: char| ch.is_whitespace() || ";&|(){}".contains(ch))
            .any(|w| w == word)
    })
}

/// What follows the path of the install ISO's `--disk`, of the virtio
/// ISO's and of the VM's disk.
const INSTALL_CD: &str = ",device=cdrom,bus=sata,readonly=on,boot.order=1";
const VIRTIO_CD: &str = ",device=cdrom,bus=sata,readonly=on";
const DISK: &str = ",format=qcow2,bus=virtio,discard=unmap,boot.order=2";

/// Whether virt-install's `install` has `--disk` `value`.
fn has_disk(install: &[String], value: &str) -> bool {
    has_args(install, &["--disk", value])
}

/// After a failed upload: no copy named (`mv`), no disk made, nothing
/// rendered or defined.
#[track_caller]
fn nothing_named_or_made(calls: &[Vec<String>]) {
    for c in calls {
        assert!(!runs(c, "mv"), "mv: {calls:#?}");
        assert!(!mentions(c, "vol-create-as"), "vol-create-as: {calls:#?}");
        assert!(
            !c.starts_with(&argv!["virt-install", "--connect"]),
            "virt-install: {calls:#?}"
        );
        assert!(!mentions(c, "define"), "define: {calls:#?}");
    }
}

/// virt-install's call among `calls`.
fn install(calls: &[Vec<String>]) -> &[String] {
    &calls[position(calls, &["virt-install", "--connect"])]
}

#[test]
fn local_isos_are_sent_once_and_the_disk_is_libvirts() {
    let w = host();
    let (iso, virtio) = isos(&w);
    let r = create(&w, &iso, &virtio);
    r.success();
    let images = w.p("images");
    let win = on_host(&iso, "Win_11.iso");
    let vio = on_host(&virtio, "virtio-win.iso");

    // What was sent is the file, under its checksum's name, and nothing
    // half-sent is left.
    // (In the order of their names, which start with their hashes.)
    let mut sent = [win.clone(), vio.clone()];
    sent.sort();
    assert_eq!(uploads(&w), sent);
    assert_eq!(sha256(&w.p(&format!("uploads/{win}"))), sha256(&iso));
    assert_eq!(sha256(&w.p(&format!("uploads/{vio}"))), sha256(&virtio));

    let out = crate::normalize(&w, &r.stdout());
    let re = regex::Regex::new(r"\(40 KiB, \d+s; kept").unwrap();
    let out = re.replace_all(&out, "(40 KiB, Ns; kept");
    assert!(
        out.contains(&format!(
            "Media\n\
             \x20 • uploaded       Win 11.iso → 127.0.0.1:$TMP/images/{win} (40 KiB, Ns; kept for the next VM)\n\
             \x20 • uploaded       virtio-win.iso → 127.0.0.1:$TMP/images/{vio} (40 KiB, Ns; kept for the next VM)\n\
             Creating\n\
             \x20 • disk           $TMP/images/windows.qcow2 (2 GiB, sparse: 196 KiB allocated)\n"
        )),
        "{out}"
    );

    // Each copy is written under a temporary name, checked there, then
    // named; libvirt is told of it.
    let calls = calls(&w);
    for name in [&win, &vio] {
        let part = regex::Regex::new(&format!(
            r"cat >> ({images}/\.{}\.[0-9a-f]{{8}}\.part) &&",
            regex::escape(name)
        ))
        .unwrap();
        let sent = run_there(&calls, &format!("{name}."));
        let line = script(&calls[sent]).unwrap();
        let part = part.captures(line).unwrap_or_else(|| panic!("{line}"))[1].to_string();
        assert_eq!(calls[sent][..20], host_shell("")[..20]);
        assert!(
            line.starts_with(&format!("umask 077; set -C; {{ true > {part}; }}")),
            "{line}"
        );
        let checked = run_there(&calls, &format!("sha256sum -- {part}"));
        let named = run_there(&calls, &format!("mv -f -T -- {part} {images}/{name}"));
        assert!(sent < checked && checked < named, "{calls:#?}");
    }
    // The disk is a volume libvirt made in the pool of the images
    // directory, refreshed first (it sees the media then); qemu-img is
    // not run.
    let refreshed = position(&calls, &["pool-refresh", "images"]);
    let made = position(
        &calls,
        &[
            "vol-create-as",
            "images",
            "windows.qcow2",
            "2147483648",
            "--format",
            "qcow2",
        ],
    );
    assert!(refreshed < made);
    assert!(made > run_there(&calls, &format!("mv -f -T -- {images}/.{vio}")));
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with(&argv!["qemu-img", "create"])
                || script(c).is_some_and(|s| s.starts_with("qemu-img create"))),
        "{calls:#?}"
    );
    let install = install(&calls);
    for disk in [
        format!("path={images}/{win}{INSTALL_CD}"),
        format!("path={images}/windows.qcow2{DISK}"),
        format!("path={images}/{vio}{VIRTIO_CD}"),
    ] {
        assert!(has_disk(install, &disk), "{disk} not in {install:?}");
    }

    // The manifest names the media on the host, and counts the disk as
    // bkt's but never the media.
    let m = w.manifest();
    let vm = &m["vms"][0];
    assert_eq!(vm["name"], "windows", "{m:#}");
    assert_eq!(vm["uri"], URI, "{m:#}");
    assert_eq!(
        vm["isos"],
        serde_json::json!([format!("{images}/{win}"), format!("{images}/{vio}")]),
        "{m:#}"
    );
    let files = m["files"].to_string();
    assert!(files.contains(&format!("{images}/windows.qcow2")), "{m:#}");
    assert!(!files.contains("bkt-media"), "{m:#}");
}

/// A create with both media on the fake host already, as an earlier
/// create left them; the install ISO's copy is whole or, when `changed`,
/// the same size with other bytes. Returns the world, the normalized
/// output, the two names on the host and the local install ISO.
fn create_with_copies_there(changed: bool) -> (World, String, String, String, String) {
    let w = host();
    let (iso, virtio) = isos(&w);
    let win = on_host(&iso, "Win_11.iso");
    let vio = on_host(&virtio, "virtio-win.iso");
    let there = |local: &str, name: &str| {
        std::fs::copy(local, w.path("uploads").join(name)).unwrap();
    };
    there(if changed { &virtio } else { &iso }, &win);
    there(&virtio, &vio);
    let r = create(&w, &iso, &virtio);
    r.success();
    let out = crate::normalize(&w, &r.stdout());
    (w, out, win, vio, iso)
}

#[test]
fn media_already_on_the_host_are_checked_there_and_not_sent_again() {
    let (w, out, win, vio, _) = create_with_copies_there(false);
    assert!(
        out.contains(&format!(
            "Media\n\
             \x20 • on host        Win 11.iso: 127.0.0.1:$TMP/images/{win} has the same SHA-256; not sent again\n\
             \x20 • on host        virtio-win.iso: 127.0.0.1:$TMP/images/{vio} has the same SHA-256; not sent again\n\
             Creating\n"
        )),
        "{out}"
    );
    let calls = calls(&w);
    let images = w.p("images");
    // The copies there are hashed where they are; nothing is written.
    run_there(&calls, &format!("sha256sum -- {images}/{win}"));
    run_there(&calls, &format!("sha256sum -- {images}/{vio}"));
    assert!(
        !calls
            .iter()
            .any(|c| mentions(c, "cat >> ") || runs(c, "mv")),
        "{calls:#?}"
    );
    // (In the order of their names, which start with their hashes.)
    let mut sent = [win.clone(), vio.clone()];
    sent.sort();
    assert_eq!(uploads(&w), sent);
    let install = install(&calls);
    assert!(
        has_disk(install, &format!("path={images}/{win}{INSTALL_CD}")),
        "{install:?}"
    );
}

#[test]
fn a_copy_changed_on_the_host_is_sent_again() {
    // Same size, other bytes: found by name, told apart by its hash.
    let (w, out, win, vio, iso) = create_with_copies_there(true);
    assert!(
        out.contains(&format!(
            "Media\n\
             \x20 • changed        Win 11.iso: 127.0.0.1:$TMP/images/{win} is not the same file any more; sending it again\n\
             \x20 • uploaded       Win 11.iso → 127.0.0.1:$TMP/images/{win} (40 KiB, "
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("{vio} has the same SHA-256; not sent again")),
        "{out}"
    );
    // (In the order of their names, which start with their hashes.)
    let mut sent = [win.clone(), vio.clone()];
    sent.sort();
    assert_eq!(uploads(&w), sent);
    assert_eq!(sha256(&w.p(&format!("uploads/{win}"))), sha256(&iso));
}

/// A create as `uri` where the host's hash of the first copy is not the
/// file's: it fails saying so, nothing is left of the copy (the fake's
/// uploads are empty) and nothing is made. Returns the calls and the
/// install ISO's name on the host, for how the copy was removed.
fn damaged_on_arrival(w: &World, uri: &str) -> (Vec<Vec<String>>, String) {
    // The host hashes what it got, and it is not what was sent.
    w.rule_first("ssh", "* -T -- 127.0.0.1 sha256sum -- *")
        .recorded("ssh/sha256sum");
    let (iso, virtio) = isos(w);
    let r = create_with(w, uri, &iso, &virtio, "2G");
    r.failure();
    let err = crate::normalize(w, &r.stderr());
    assert!(
        err.contains(
            "error: uploading Win 11.iso to 127.0.0.1 failed; nothing of it is left there\n\
             caused by: the copy on 127.0.0.1 is not the file sent (SHA-256 \
             2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824, not "
        ),
        "{err}"
    );
    let calls = calls(w);
    assert!(uploads(w).is_empty(), "{:?}", uploads(w));
    nothing_named_or_made(&calls);
    assert!(!w.manifest_path().exists(), "{:#}", w.manifest());
    (calls, on_host(&iso, "Win_11.iso"))
}

#[test]
fn a_copy_that_arrives_damaged_is_removed_and_nothing_is_made() {
    let w = host();
    let (calls, _) = damaged_on_arrival(&w, URI);
    let part = script(&calls[run_there(&calls, "sha256sum -- ")])
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(part.ends_with(".part"), "{part}");
    run_there(&calls, &format!("rm -- {part}"));
}

#[test]
fn a_remote_iso_is_used_where_it_is_and_nothing_is_sent() {
    let w = host();
    let (_, virtio) = isos(&w);
    let remote = "/srv/isos/Win11_24H2.iso";
    w.rule_first(
        "ssh",
        &format!("* -T -- 127.0.0.1 stat -L -c * -- {remote}"),
    )
    .recorded("ssh/stat-file");
    // What is in it is read there: dd of byte ranges, in hex (the host's
    // file is the stand-in ISO here).
    let there = w.iso("there.iso");
    w.rule_first(
        "ssh",
        &format!("* -T -- 127.0.0.1 exec < {remote} && dd iflag=skip_bytes,count_bytes *"),
    )
    .sh(&format!(
        "PATH=/usr/bin:/bin; eval \"$(printf '%s' \"${{20}}\" | sed 's|{remote}|{there}|')\"\n"
    ));
    let r = create_from(
        &w,
        URI,
        &["--remote-iso", remote, "--virtio-iso", &virtio],
        "2G",
    );
    r.success();
    assert!(
        r.stdout().contains(
            "  ✓ Windows        Windows 11 24H2 x64, build 26100.1742: Windows 11 Home, \
             Windows 11 Pro, Windows 11 Education\n"
        ),
        "{}",
        r.stdout()
    );
    let calls = calls(&w);
    let install = install(&calls);
    assert!(
        has_disk(install, &format!("path={remote}{INSTALL_CD}")),
        "{install:?}"
    );
    // Only the virtio ISO of this machine is sent.
    assert_eq!(
        calls.iter().filter(|c| mentions(c, "cat >> ")).count(),
        1,
        "{calls:#?}"
    );
    assert_eq!(uploads(&w), [on_host(&virtio, "virtio-win.iso")]);
}

#[test]
fn a_remote_iso_needs_a_remote_host() {
    let w = World::new();
    w.libvirt_up().domains(&[]);
    let r = w.bkt(&["vm", "create", "--remote-iso", "/srv/isos/w.iso", "--yes"]);
    r.failure();
    assert_eq!(
        r.stderr(),
        "error: --remote-iso names an ISO on a libvirt host reached over ssh, and qemu:///system is this machine\n\
         hint: pass the ISO with --iso PATH\n"
    );
    assert!(w.calls().is_empty(), "{:#?}", w.calls());
}

#[test]
fn without_a_pool_for_the_images_directory_qemu_img_makes_the_disk_there() {
    let w = host();
    // The recorded pools as they were: none holds the fake's directory.
    w.rule_first("virsh", "* echo @@bkt *; pool-dumpxml *")
        .recorded("virsh/batch-pool-dumpxml");
    w.rule("ssh", "* -T -- 127.0.0.1 if [ -e * ]*set -C; : > *");
    w.rule("ssh", "* -T -- 127.0.0.1 qemu-img create *");
    // A 4 GiB disk: the size the recorded `qemu-img info` says.
    w.rule("ssh", "* -T -- 127.0.0.1 qemu-img info *")
        .out(&fixture("qemu-img/info-qcow2.json"));
    let (iso, virtio) = isos(&w);
    create_with(&w, URI, &iso, &virtio, "4G").success();
    let calls = calls(&w);
    let images = w.p("images");
    assert!(
        calls.contains(&host_shell(&format!(
            "qemu-img create -q -f qcow2 {images}/windows.qcow2 4294967296"
        ))),
        "{calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| mentions(c, "vol-create-as") || mentions(c, "pool-refresh")),
        "{calls:#?}"
    );
}

/// The same host as root (the fix bkt gives).
const ROOT: &str = URI;

/// A user of the libvirt group, not root.
const ANNA: &str = "qemu+ssh://anna@127.0.0.1:2222/system?keyfile=/keys/id_vm&no_verify=1";

/// The host as a user who cannot write its images directory sees it;
/// libvirt makes and fills the volumes it is asked for, kept by the fake
/// in `$FAKE_DIR/uploads/` as the ssh copies are.
fn host_for_anna() -> World {
    let w = host();
    w.rule_first("ssh", "* -T -- 127.0.0.1 test -w *")
        .recorded("ssh/test-w-denied");
    w.rule("virsh", "* vol-create images /dev/stdin")
        .sh("/bin/cat >\"$FAKE_DIR/volume.xml\"\n")
        .recorded("virsh/vol-create-stdin");
    // `-c URI vol-upload --pool images NAME /dev/stdin`: NAME is the 6th.
    w.rule("virsh", "* vol-upload --pool images * /dev/stdin")
        .sh("/bin/cat >\"$FAKE_DIR/uploads/$6\"\n")
        .recorded("virsh/vol-upload-stdin");
    w.rule("virsh", "* vol-delete *")
        .sh("/bin/rm -f \"$FAKE_DIR/uploads/${4##*/}\"\n")
        .recorded("virsh/vol-delete-created");
    w
}

#[test]
fn a_user_who_cannot_write_there_sends_the_media_through_libvirts_pool() {
    let w = host_for_anna();
    let (iso, virtio) = isos(&w);
    let r = create_with(&w, ANNA, &iso, &virtio, "2G");
    r.success();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.contains(
            "  ✓ media          ISOs of this machine are sent into libvirt's pool images \
             (127.0.0.1:$TMP/images) once and kept there\n"
        ),
        "{out}"
    );
    let win = on_host(&iso, "Win_11.iso");
    let vio = on_host(&virtio, "virtio-win.iso");
    assert!(
        out.contains(&format!(
            "  • uploaded       Win 11.iso → 127.0.0.1:$TMP/images/{win} ("
        )),
        "{out}"
    );
    // (In the order of their names, which start with their hashes.)
    let mut sent = [win.clone(), vio.clone()];
    sent.sort();
    assert_eq!(uploads(&w), sent);
    assert_eq!(sha256(&w.p(&format!("uploads/{win}"))), sha256(&iso));
    assert_eq!(sha256(&w.p(&format!("uploads/{vio}"))), sha256(&virtio));
    // The volume libvirt made for the last one: raw, its size, readable
    // by the user who checks it.
    assert_eq!(
        std::fs::read_to_string(w.path("volume.xml")).unwrap(),
        format!(
            "<volume>\n  <name>{vio}</name>\n  <capacity unit='bytes'>40960</capacity>\n  \
             <allocation unit='bytes'>0</allocation>\n  <target>\n    <format type='raw'/>\n    \
             <permissions>\n      <mode>0644</mode>\n    </permissions>\n  </target>\n</volume>\n"
        )
    );
    let calls = calls(&w);
    let images = w.p("images");
    // Each: a volume made, filled, then checked.
    for name in [&win, &vio] {
        let filled = position(
            &calls,
            &["vol-upload", "--pool", "images", name, "/dev/stdin"],
        );
        assert!(calls[filled - 1].ends_with(&argv!["vol-create", "images", "/dev/stdin"]));
        let checked = run_there(&calls, &format!("sha256sum -- {images}/{name}"));
        assert!(filled < checked, "{calls:#?}");
    }
    assert!(
        !calls
            .iter()
            .any(|c| mentions(c, "cat >> ") || runs(c, "mv")),
        "nothing written over ssh: {calls:#?}"
    );
    // Preflight found the pool; the disk step does not ask again.
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.ends_with(&argv!["pool-list", "--uuid"]))
            .count(),
        1,
        "{calls:#?}"
    );
}

#[test]
fn a_volume_that_arrives_damaged_is_deleted_by_libvirt_and_nothing_is_made() {
    let w = host_for_anna();
    let (calls, win) = damaged_on_arrival(&w, ANNA);
    position(
        &calls,
        &["vol-delete".to_string(), format!("{}/{win}", w.p("images"))],
    );
}

#[test]
fn a_copy_in_the_pool_that_is_not_the_file_is_left_and_said() {
    let w = host_for_anna();
    let (iso, virtio) = isos(&w);
    let win = on_host(&iso, "Win_11.iso");
    // Same size, other bytes: another bkt still sending, or changed.
    std::fs::copy(&virtio, w.path("uploads").join(&win)).unwrap();
    let before = sha256(&w.p(&format!("uploads/{win}")));
    let r = create_with(&w, ANNA, &iso, &virtio, "2G");
    r.failure();
    let err = crate::normalize(&w, &r.stderr());
    assert!(
        err.ends_with(&format!(
            "error: 127.0.0.1:$TMP/images/{win} is there but is not Win 11.iso (changed on the \
             host, or still being sent)\n\
             hint: if no other bkt is sending it, remove it: virsh -c '{ANNA}' vol-delete \
             $TMP/images/{win}\n"
        )),
        "{err}"
    );
    assert_eq!(
        sha256(&w.p(&format!("uploads/{win}"))),
        before,
        "left as it was"
    );
    let calls = calls(&w);
    for never in ["vol-create", "vol-upload", "vol-delete"] {
        assert!(
            !calls.iter().any(|c| mentions(c, never)),
            "{never}: {calls:#?}"
        );
    }
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with(&argv!["virt-install", "--connect"])),
        "{calls:#?}"
    );
}

#[test]
fn with_no_way_to_write_the_images_directory_create_stops_before_anything() {
    let w = host_for_anna();
    // The recorded pools as they were: none holds the fake's directory.
    w.rule_first("virsh", "* echo @@bkt *; pool-dumpxml *")
        .recorded("virsh/batch-pool-dumpxml");
    let (iso, virtio) = isos(&w);
    let r = create_with(&w, ANNA, &iso, &virtio, "2G");
    r.failure();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.contains(&format!(
            "  ✗ media          anna cannot write to 127.0.0.1:$TMP/images, where the ISOs of this \
             machine go, and no active libvirt pool holds that directory\n\
             \x20   fix: connect as root (--connect '{ROOT}'), or make it an active pool on the \
             host, as root there: virsh -c qemu:///system pool-define-as default dir --target \
             $TMP/images && virsh -c qemu:///system pool-start default && virsh -c \
             qemu:///system pool-autostart default (only pool-start when a pool for it is \
             defined)\n"
        )),
        "{out}"
    );
    let calls = calls(&w);
    assert!(
        !calls.iter().any(|c| mentions(c, "vol-")
            || mentions(c, "cat >> ")
            || c.starts_with(&argv!["virt-install", "--connect"])),
        "{calls:#?}"
    );
    assert!(uploads(&w).is_empty());
}

#[test]
fn an_unattended_install_as_a_user_who_cannot_write_there_is_refused_first() {
    let w = host_for_anna();
    let (iso, virtio) = isos(&w);
    let pw = w.path("pw");
    std::fs::write(&pw, "hunter2\n").unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let answers = [
        "--unattended",
        "--password-file",
        pw.to_str().unwrap(),
        "--username",
        "anna",
    ];
    let r = w.bkt(
        &[
            &["vm", "-c", ANNA, "create", "--iso", &iso][..],
            &answers,
            &["--virtio-iso", &virtio, "--yes"],
        ]
        .concat(),
    );
    r.failure();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.contains(&format!(
            "  ✗ media          anna cannot write to 127.0.0.1:$TMP/images, where the answer ISO \
             of an unattended install goes (it holds the password, and only a file of bkt's \
             own is trusted with it; libvirt's pool images would take the ISOs)\n\
             \x20   fix: connect as root (--connect '{ROOT}'), or install without --unattended\n"
        )),
        "{out}{}",
        r.stderr()
    );
    let calls = calls(&w);
    assert!(
        !calls
            .iter()
            .any(|c| mentions(c, "vol-") || mentions(c, "xorriso")),
        "{calls:#?}"
    );
    assert!(uploads(&w).is_empty());
}

#[test]
fn the_drivers_from_the_local_cache_are_sent_the_same_way() {
    let w = host();
    let (iso, _) = isos(&w);
    let r = create_from(&w, URI, &["--iso", &iso], "2G");
    r.success();
    let cached = w.p("home/.cache/bkt/vm/virtio-win.iso");
    let vio = on_host(&cached, "virtio-win.iso");
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.contains(&format!(
            "  • uploaded       virtio-win.iso → 127.0.0.1:$TMP/images/{vio} (1 MiB, "
        )),
        "{out}"
    );
    assert_eq!(sha256(&w.p(&format!("uploads/{vio}"))), sha256(&cached));
    let calls = calls(&w);
    let install = install(&calls);
    assert!(
        has_disk(install, &format!("path={}/{vio}{VIRTIO_CD}", w.p("images"))),
        "{install:?}"
    );
}

#[test]
fn a_pool_gone_before_its_refresh_makes_no_disk() {
    let w = host();
    // Undefined after preflight found it: libvirt's refusal as recorded
    // (for a pool named `bkt-no-such-pool`).
    w.rule_first("virsh", "* pool-refresh images")
        .out(&fixture("virsh/pool-refresh-missing.txt"))
        .err(&fixture("virsh/pool-refresh-missing.err").replace("bkt-no-such-pool", "images"))
        .code(
            fixture("virsh/pool-refresh-missing.code")
                .trim()
                .parse()
                .unwrap(),
        );
    let (iso, virtio) = isos(&w);
    let r = create(&w, &iso, &virtio);
    r.failure();
    let err = crate::normalize(&w, &r.stderr());
    assert!(
        err.contains(
            "error: creating windows failed; nothing was left behind\n\
             caused by: refreshing the storage pool images\n"
        ),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "pool-refresh images` failed (exit status: 1)\n--- stderr\n{}",
            fixture("virsh/pool-refresh-missing.err").replace("bkt-no-such-pool", "images")
        )),
        "{err}"
    );
    let calls = calls(&w);
    assert!(
        !calls.iter().any(|c| mentions(c, "vol-create-as")),
        "{calls:#?}"
    );
}

#[test]
fn a_volume_of_that_name_made_meanwhile_is_never_deleted() {
    let w = host();
    // Another client made it after preflight looked: libvirt refuses.
    w.rule_first(
        "virsh",
        "* vol-create-as images windows.qcow2 2147483648 --format qcow2",
    )
    .recorded("virsh/vol-create-as-taken");
    let (iso, virtio) = isos(&w);
    let r = create(&w, &iso, &virtio);
    r.failure();
    let err = crate::normalize(&w, &r.stderr());
    assert!(
        err.contains(
            "caused by: $TMP/images/windows.qcow2 appeared while preflight ran; bkt never overwrites a disk\n\
             hint: choose another --name, or move the file away if nothing uses it\n"
        ),
        "{err}"
    );
    let calls = calls(&w);
    assert!(
        !calls
            .iter()
            .any(|c| mentions(c, "vol-delete") || runs(c, "rm")),
        "{calls:#?}"
    );
    // Nothing of it on record as bkt's: the name create reserved is given
    // back, and no file is left on record.
    assert!(w.manifest_path().exists());
    assert_eq!(w.manifest(), serde_json::json!({"vms": [], "files": []}));
}

/// Ctrl-C while an ISO is on its way (the signal reaching bkt, not the
/// child, as SIGTERM would): nothing of it stays on the host, nothing is
/// made, and bkt says it was interrupted (exit 130).
#[test]
fn an_upload_interrupted_leaves_nothing_on_the_host() {
    let w = host();
    let (iso, virtio) = isos(&w);
    // Bigger than a pipe holds: bkt is still feeding when it is told.
    let mut big = std::fs::read(&iso).unwrap();
    big.resize(4 << 20, 0);
    std::fs::write(&iso, big).unwrap();
    w.rule_first("ssh", SEND)
        .sh(&format!("{}{KEEP_SENT}", w.hold()));
    let words = create_words(URI, &["--iso", &iso, "--virtio-iso", &virtio], "2G");
    let child = w.command(&words).spawn().unwrap();
    w.wait_held("the upload never began");
    // SAFETY: signalling the child we started, by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    w.release();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    // Whether it was seen while feeding or just after, the copy goes.
    let err = err.split_once("error: ").map_or("", |(_, e)| e);
    assert!(
        err.starts_with(
            "stopped before anything was made\n\
             caused by: uploading Win 11.iso to 127.0.0.1 failed; nothing of it is left there\n"
        ) && err.ends_with("caused by: interrupted\n"),
        "{err}"
    );
    assert!(uploads(&w).is_empty(), "{:?}", uploads(&w));
    let calls = calls(&w);
    nothing_named_or_made(&calls);
    assert!(!w.manifest_path().exists(), "{:#}", w.manifest());
}

/// The temporary name taken on the host (by what, bkt cannot know): that
/// file is not bkt's, and nothing is removed.
#[test]
fn a_taken_temporary_name_is_left_alone() {
    let w = host();
    w.rule_first("ssh", SEND)
        .err("/srv/x.part: File exists\n")
        .code(17);
    let (iso, virtio) = isos(&w);
    let r = create(&w, &iso, &virtio);
    r.failure();
    let err = crate::normalize(&w, &r.stderr());
    assert!(
        err.contains("caused by: /srv/x.part: File exists\n"),
        "{err}"
    );
    let calls = calls(&w);
    assert!(
        !calls.iter().any(|c| runs(c, "rm") || runs(c, "mv")),
        "{calls:#?}"
    );
}

#[test]
fn a_dry_run_over_ssh_sends_nothing_and_names_the_pool_it_would_use() {
    let w = host();
    w.rule("virt-install", "* --print-xml 2 --dry-run")
        .out(&fixture("virt-install/print-xml-windows-qemu.xml"));
    let (iso, virtio) = isos(&w);
    let r = create_from(
        &w,
        URI,
        &["--iso", &iso, "--virtio-iso", &virtio, "--dry-run"],
        "2G",
    );
    r.success();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.contains(&format!(
            "Media:\n  $TMP/isos/Win 11.iso would be sent to 127.0.0.1:$TMP/images/bkt-media-<its SHA-256>-… (unless it is there)\n\
             \x20 $TMP/isos/virtio-win.iso would be sent to 127.0.0.1:$TMP/images/bkt-media-<its SHA-256>-… (unless it is there)\n\
             Commands:\n  virsh -c '{URI}' vol-create-as images windows.qcow2 2147483648 --format qcow2\n"
        )),
        "{out}"
    );
    let calls = calls(&w);
    assert!(
        !calls.iter().any(|c| mentions(c, "cat >> ")
            || mentions(c, "vol-create")
            || runs(c, "define")
            || mentions(c, "sha256sum")),
        "{calls:#?}"
    );
    assert!(uploads(&w).is_empty());
    assert!(!w.manifest_path().exists());
}

/// enable-rdp as a user who cannot write the images directory: the
/// script ISO is a volume libvirt makes and fills, and deletes again once
/// the drive has its medium back.
#[test]
fn enable_rdp_as_a_user_of_the_libvirt_group_goes_through_the_pool() {
    let w = host_for_anna();
    w.install_fake("xorriso");
    w.rule("xorriso", "-as mkisofs *").out("an ISO");
    w.rule("virsh", "* dumpxml --inactive windows")
        .out(&crate::harness::windows_running_xml(&w));
    w.rule("virsh", "* domstate --reason windows")
        .out(&fixture("virsh/domstate-reason-running.txt"));
    w.rule("virsh", "* change-media *")
        .out("Successfully updated media.\n");
    w.rule("virsh", "* domifaddr windows --source lease")
        .out(&fixture("virsh/domifaddr-lease.txt").replace("192.168.122.4", "127.0.0.71"));
    crate::remote::host_probe_says(&w, "127.0.0.71", "open");
    let r = w.bkt(&["vm", "-c", ANNA, "enable-rdp", "windows"]);
    r.success();
    let iso = w.p("images/windows-enable-rdp.iso");
    let calls = calls(&w);
    let made = position(&calls, &["vol-create", "images", "/dev/stdin"]);
    let filled = position(
        &calls,
        &[
            "vol-upload",
            "--pool",
            "images",
            "windows-enable-rdp.iso",
            "/dev/stdin",
        ],
    );
    let inserted = position(&calls, &["change-media", "windows", "sda", &iso]);
    let deleted = position(&calls, &["vol-delete", &iso]);
    assert!(
        made < filled && filled < inserted && inserted < deleted,
        "{calls:#?}"
    );
    assert!(
        calls[made - 1].ends_with(&argv!["pool-refresh", "images"]),
        "{calls:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(w.path("uploads/windows-enable-rdp.iso")).ok(),
        None,
        "deleted"
    );
    assert!(!calls.iter().any(|c| mentions(c, "cat >> ")), "{calls:#?}");
}

/// A damaged copy that libvirt then will not delete: the error names what
/// is left on the host and the command that removes it, never "nothing".
#[test]
fn a_copy_that_cannot_be_removed_is_named_with_its_command() {
    let w = host_for_anna();
    w.rule_first("ssh", "* -T -- 127.0.0.1 sha256sum -- *")
        .recorded("ssh/sha256sum");
    w.rule_first("virsh", "* vol-delete *")
        .err(&fixture("virsh/vol-delete-not-a-volume.txt"))
        .code(1);
    let (iso, virtio) = isos(&w);
    let r = create_with(&w, ANNA, &iso, &virtio, "2G");
    r.failure();
    let err = crate::normalize(&w, &r.stderr());
    let win = on_host(&iso, "Win_11.iso");
    assert!(
        err.contains(&format!(
            "error: uploading Win 11.iso to 127.0.0.1 failed, and its partial copy \
             $TMP/images/{win} is left there ("
        )),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "hint: remove it: virsh -c '{ANNA}' vol-delete $TMP/images/{win}\n"
        )),
        "{err}"
    );
    assert!(!err.contains("nothing of it is left"), "{err}");
}

/// A create over ssh that fails once libvirt has made the disk volume (here
/// virt-install cannot render the domain), the rollback's `vol-delete`
/// answered by `answer`. The world, the run, and the calls from the render
/// on (the ssh master's end left out), as argv vectors.
fn fails_after_the_volume(
    answer: impl FnOnce(crate::harness::Rule<'_>) -> crate::harness::Rule<'_>,
) -> (World, Run, Vec<Vec<String>>) {
    let w = host();
    w.rule_first("virt-install", "* --print-xml --dry-run")
        .err("ERROR    Error: --disk path=...: unknown option\n")
        .code(1);
    answer(w.rule_first("virsh", "* vol-delete *"));
    let (iso, virtio) = isos(&w);
    let r = create(&w, &iso, &virtio);
    let calls = w.calls();
    let render = calls
        .iter()
        .position(|c| c[..2] == ["virt-install", "--connect"])
        .unwrap_or_else(|| panic!("no render: {calls:#?}"));
    // All but the ssh master's end.
    let after = calls[render + 1..]
        .iter()
        .filter(|c| !c.windows(2).any(|p| p == ["-O", "exit"]))
        .cloned()
        .collect();
    (w, r, after)
}

/// stderr from the error on, the virt-install command that failed (its
/// UUID and MAC are random) shortened.
fn error_of(w: &World, r: &Run) -> String {
    let err = crate::normalize(w, &r.stderr());
    let err = &err[err.find("error: ").unwrap_or(0)..];
    regex::Regex::new("`virt-install [^`]*`")
        .unwrap()
        .replace(err, "`virt-install …`")
        .into_owned()
}

/// `virsh -c URI vol-delete PATH` of the disk.
fn vol_delete_of_the_disk(w: &World) -> Vec<String> {
    [
        "virsh",
        "-c",
        URI,
        "vol-delete",
        &w.p("images/windows.qcow2"),
    ]
    .map(String::from)
    .to_vec()
}

/// What `create` says up to the rollback's first line.
const DISK_THEN_ROLLED_BACK: &str = "Creating\n\
     \x20 • disk           $TMP/images/windows.qcow2 (2 GiB, sparse: 196 KiB allocated)\n\
     Rolled back\n";

#[test]
fn a_failed_create_over_ssh_has_libvirt_delete_the_disk_volume() {
    let (w, r, after) = fails_after_the_volume(|rule| rule.recorded("virsh/vol-delete-created"));
    r.failure();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.ends_with(&format!(
            "{DISK_THEN_ROLLED_BACK}\
             \x20 • removed        disk $TMP/images/windows.qcow2\n\
             \x20 • removed        manifest entry\n"
        )),
        "{out}"
    );
    assert_eq!(
        error_of(&w, &r),
        "error: creating windows failed; nothing was left behind\n\
         caused by: rendering the domain with virt-install\n\
         caused by: `virt-install …` failed (exit status: 1)\n\
         --- stderr\n\
         ERROR    Error: --disk path=...: unknown option\n"
    );
    // Through libvirt, which made it (so that the pool forgets it too),
    // not `rm` over ssh; and nothing else.
    assert_eq!(after, [vol_delete_of_the_disk(&w)]);
    assert_eq!(w.manifest()["vms"], serde_json::json!([]));
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}

/// The volume gone by the time of the rollback (someone deleted it, or
/// the pool lost it): what the rollback wanted; nothing is left.
#[test]
fn a_disk_volume_already_gone_at_rollback_is_fine() {
    let (w, r, after) = fails_after_the_volume(|rule| {
        let disk = rule.world().p("images/windows.qcow2");
        rule.err(
            &fixture("virsh/vol-delete-not-a-volume.txt")
                .replace("/var/lib/libvirt/images/r3.qcow2", &disk),
        )
        .code(1)
    });
    r.failure();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.ends_with(&format!(
            "{DISK_THEN_ROLLED_BACK}\
             \x20 • removed        manifest entry\n"
        )),
        "{out}"
    );
    assert!(
        error_of(&w, &r).starts_with(
            "error: creating windows failed; nothing was left behind\n\
             caused by: rendering the domain with virt-install\n"
        ),
        "{}",
        r.stderr()
    );
    assert_eq!(after, [vol_delete_of_the_disk(&w)]);
    assert_eq!(w.manifest()["vms"], serde_json::json!([]));
    assert_eq!(w.manifest()["files"], serde_json::json!([]));
}

/// libvirt refuses to delete the volume: it is named as left, with why,
/// and the manifest keeps the entry (still "creating") and the disk, so
/// that `destroy` finishes the job.
#[test]
fn a_disk_volume_libvirt_cannot_delete_is_named_as_left() {
    let (w, r, after) = fails_after_the_volume(|rule| {
        let disk = rule.world().p("images/windows.qcow2");
        rule.err(&format!(
            "error: Failed to delete vol {disk}\n\
             error: cannot unlink file '{disk}': Permission denied\n"
        ))
        .code(1)
    });
    r.failure();
    let out = crate::normalize(&w, &r.stdout());
    assert!(
        out.ends_with(&format!(
            "{DISK_THEN_ROLLED_BACK}\
             \x20 • left           disk $TMP/images/windows.qcow2: cannot unlink file \
             '$TMP/images/windows.qcow2': Permission denied\n"
        )),
        "{out}"
    );
    let err = error_of(&w, &r);
    assert!(
        err.starts_with(
            "error: creating windows failed; some of what it made is left (see \"left\" above)\n\
             caused by: rendering the domain with virt-install\n"
        ),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "hint: remove the rest with: bkt vm -c {URI} destroy windows\n"
        )),
        "{err}"
    );
    assert_eq!(after, [vol_delete_of_the_disk(&w)]);
    assert_eq!(w.manifest()["vms"][0]["creating"], true);
    assert_eq!(
        w.manifest()["files"],
        serde_json::json!([{"vm": "windows", "uri": URI, "path": w.p("images/windows.qcow2")}])
    );
}

/// `create --virt-type kvm` over ssh checks `/dev/kvm` where QEMU runs:
/// the host's, asked over the master as doctor asks it; this machine's
/// device (here `BKT_VM_KVM_DEVICE`) is never looked at.
#[test]
fn create_over_ssh_checks_kvm_on_the_host() {
    let stat_kvm = host_shell("stat -L -c '%f %s %u %g' -- /dev/kvm");
    for host_has_kvm in [true, false] {
        let w = host();
        if host_has_kvm {
            // This machine has none: a check of it would fail.
            std::fs::remove_file(w.path("kvm")).unwrap();
            w.rule_first(
                "ssh",
                "* -T -- 127.0.0.1 stat -L -c '%f %s %u %g' -- /dev/kvm",
            )
            .recorded("ssh/stat-dev-kvm");
        }
        let (iso, virtio) = isos(&w);
        let mut words = create_words(URI, &["--iso", &iso, "--virtio-iso", &virtio], "2G");
        let kvm = words.iter().position(|a| *a == "qemu").unwrap();
        words[kvm] = "kvm";
        let r = w.bkt(&words);
        let out = crate::normalize(&w, &r.stdout());
        let calls = calls(&w);
        assert!(calls.contains(&stat_kvm), "{calls:#?}");
        assert!(
            !calls.iter().flatten().any(|a| a.contains(&w.p("kvm"))),
            "{calls:#?}"
        );
        if host_has_kvm {
            r.success();
            assert!(
                out.contains("\n  ✓ KVM            /dev/kvm exists on 127.0.0.1\n"),
                "{out}"
            );
        } else {
            r.failure();
            assert!(
                out.contains(
                    "\n  ✗ KVM            /dev/kvm does not exist on 127.0.0.1: \
                     no hardware virtualization there\n"
                ),
                "{out}"
            );
            nothing_named_or_made(&calls);
            assert!(uploads(&w).is_empty(), "{:?}", uploads(&w));
        }
    }
}

/// An upload that fails, and whose partial copy the host then will not
/// remove: the error names the copy left there and the command that
/// removes it, never "nothing of it is left there".
#[test]
fn a_partial_copy_that_cannot_be_removed_is_named_with_its_command() {
    let w = host();
    w.rule_first("ssh", SEND)
        .err("cat: write error: No space left on device\n")
        .code(1);
    w.rule_first("ssh", "* -T -- 127.0.0.1 rm -f -- *")
        .err("rm: cannot remove '/x.part': Read-only file system\n")
        .code(1);
    let (iso, virtio) = isos(&w);
    let r = create(&w, &iso, &virtio);
    r.failure();
    let err = crate::normalize(&w, &r.stderr());
    let part = regex::Regex::new(r"\.[0-9a-f]{8}\.part").unwrap();
    let err = part.replace_all(&err, ".TAG.part");
    // After the progress line.
    let err = err.split_once("\nerror: ").map_or("", |(_, e)| e);
    let win = on_host(&iso, "Win_11.iso");
    assert_eq!(
        err,
        format!(
            "uploading Win 11.iso to 127.0.0.1 failed, and its partial copy \
             $TMP/images/.{win}.TAG.part is left there \
             (rm: cannot remove '/x.part': Read-only file system)\n\
             caused by: copying $TMP/isos/Win 11.iso to 127.0.0.1:$TMP/images/.{win}.TAG.part\n\
             caused by: cat: write error: No space left on device\n\
             hint: remove it: ssh -p 2222 -i /keys/id_vm root@127.0.0.1 rm -- $TMP/images/.{win}.TAG.part\n"
        )
    );
    // The removal was tried, on the copy that was being sent.
    let calls = calls(&w);
    let sent = run_there(&calls, "cat >> ");
    let tried = run_there(&calls, "rm -f -- ");
    assert!(sent < tried, "{calls:#?}");
    nothing_named_or_made(&calls);
}
