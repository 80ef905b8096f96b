#!/usr/bin/env python3
"""Checks an image archive against what the manifests rely on, whichever
way it was built (`docker save dbaas:dev -o dbaas.tar`, or
k8s/scripts/image.sh, which runs this on its own archive):

  check-image.py ARCHIVE     (a docker-archive tar; `-` reads stdin)

- runs as 65532:65532 (distroless `nonroot`), which /etc/passwd names,
  so `runAsNonRoot` pods start;
- entrypoint /usr/local/bin/dbaas-api, port 8000;
- the five binaries in /usr/local/bin, executable, none setuid/setgid;
- nothing the pods must write to: /tmp is the only world-writable
  directory (1777), so `readOnlyRootFilesystem` loses nothing;
- the CA bundle is there (rustls reads it for TLS to MongoDB/Redis).

Prints one line per check and exits 1 on the first failure.
"""

import io
import json
import stat
import sys
import tarfile

BINARIES = ["dbaas-api", "dbaas-reconciler", "dbaas-worker", "dbaas-local", "kubedb-standin"]


def fail(msg):
    print(f"[check-image] FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print(f"[check-image] ok: {msg}", file=sys.stderr)


def main():
    if len(sys.argv) != 2:
        fail("usage: check-image.py ARCHIVE")
    src = sys.argv[1]
    data = sys.stdin.buffer.read() if src == "-" else open(src, "rb").read()
    outer = tarfile.open(fileobj=io.BytesIO(data))
    manifest = json.load(outer.extractfile("manifest.json"))
    if len(manifest) != 1:
        fail(f"expected one image in the archive, found {len(manifest)}")
    config = json.load(outer.extractfile(manifest[0]["Config"]))["config"]

    if config.get("User") != "65532:65532":
        fail(f"user is {config.get('User')!r}, not 65532:65532")
    ok("user 65532:65532")
    if config.get("Entrypoint") != ["/usr/local/bin/dbaas-api"]:
        fail(f"entrypoint is {config.get('Entrypoint')!r}")
    ports = config.get("ExposedPorts") or {}
    if "8000/tcp" not in ports and "8000" not in ports:
        fail(f"port 8000 not exposed: {config.get('ExposedPorts')!r}")
    ok("entrypoint dbaas-api, port 8000")

    # The final filesystem: later layers win; whiteouts remove.
    files = {}
    for layer in manifest[0]["Layers"]:
        with tarfile.open(fileobj=outer.extractfile(layer)) as t:
            for m in t.getmembers():
                name = "/" + m.name.lstrip("./").rstrip("/")
                base = name.rsplit("/", 1)[-1]
                if base.startswith(".wh."):
                    files.pop(name.replace(".wh.", "", 1), None)
                    continue
                content = t.extractfile(m).read() if m.name.endswith("etc/passwd") else None
                files[name] = (m, content)

    for b in BINARIES:
        path = f"/usr/local/bin/{b}"
        if path not in files or not files[path][0].isfile():
            fail(f"{path} missing")
        mode = files[path][0].mode
        if not mode & stat.S_IXOTH:
            fail(f"{path} is not executable by all ({oct(mode)})")
    ok(f"{len(BINARIES)} binaries in /usr/local/bin")

    passwd = files.get("/etc/passwd", (None, None))[1]
    if not passwd or b"nonroot:x:65532:65532:" not in passwd:
        fail("/etc/passwd does not name nonroot (65532)")
    ok("/etc/passwd names nonroot")

    for name, (m, _) in files.items():
        if m.mode & (stat.S_ISUID | stat.S_ISGID) and not m.isdir():
            fail(f"{name} is setuid/setgid")
        if m.isdir() and m.mode & stat.S_IWOTH and name != "/tmp":
            fail(f"{name} is world-writable")
    tmp = files.get("/tmp")
    if not tmp or not tmp[0].isdir() or tmp[0].mode & 0o7777 != 0o1777:
        fail("/tmp is not a 1777 directory")
    ok("no setuid files; /tmp the only world-writable directory")

    if "/etc/ssl/certs/ca-certificates.crt" not in files:
        fail("no CA bundle at /etc/ssl/certs/ca-certificates.crt")
    ok("CA bundle present")


if __name__ == "__main__":
    main()
