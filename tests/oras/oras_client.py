"""Drives the real oras-py client (PyPI `oras`) for shubnet's integration tests.

Usage:
  oras_client.py push HOST REF FILE [--user U --token T] [--chunked N]
      pushes FILE as a SIF artifact with Apptainer's media types; prints the manifest digest
  oras_client.py pull HOST REF OUTDIR [--user U --token T]
      pulls every layer into OUTDIR; prints the paths written
  oras_client.py manifest HOST REF [--user U --token T]
      prints {"digest": ..., "manifest": ...} as JSON

HOST is host:port of a plain-HTTP registry; REF is collection/name:tag.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile

import oras.provider

SIF_CONFIG = "application/vnd.sylabs.sif.config.v1+json"
SIF_LAYER = "application/vnd.sylabs.sif.layer.v1.sif"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def registry(args):
    reg = oras.provider.Registry(hostname=args.host, insecure=True)
    if args.user:
        reg.auth.set_basic_auth(args.user, args.token)
    return reg


def push(args):
    reg = registry(args)
    work = tempfile.mkdtemp(prefix="oras-push-")
    config = os.path.join(work, "config.json")
    with open(config, "w") as f:
        f.write("{}")
    # oras-py wants layer paths relative to the working directory.
    os.chdir(os.path.dirname(os.path.abspath(args.file)))
    name = os.path.basename(args.file)
    kwargs = {}
    if args.chunked:
        kwargs = {"do_chunked": True, "chunk_size": args.chunked}
    r = reg.push(
        target=f"{args.host}/{args.ref}",
        files=[f"{name}:{SIF_LAYER}"],
        manifest_config=f"{config}:{SIF_CONFIG}",
        manifest_annotations={"org.opencontainers.image.created": "2026-01-02T03:04:05Z"},
        disable_path_validation=True,
        quiet=True,
        **kwargs,
    )
    print(r.headers.get("Docker-Content-Digest", ""))


def pull(args):
    reg = registry(args)
    files = reg.pull(target=f"{args.host}/{args.ref}", outdir=args.outdir)
    for f in files:
        print(f)


def manifest(args):
    reg = registry(args)
    container = reg.get_container(f"{args.host}/{args.ref}")
    url = f"{reg.prefix}://{container.manifest_url()}"
    r = reg.do_request(url, "GET", headers={"Accept": MANIFEST})
    if r.status_code != 200:
        print(f"GET {url}: {r.status_code} {r.text}", file=sys.stderr)
        sys.exit(1)
    digest = "sha256:" + hashlib.sha256(r.content).hexdigest()
    if r.headers.get("Docker-Content-Digest") != digest:
        print(f"header digest {r.headers.get('Docker-Content-Digest')} != {digest}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"digest": digest, "manifest": r.json()}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("push", "pull", "manifest"):
        s = sub.add_parser(name)
        s.add_argument("host")
        s.add_argument("ref")
        if name == "push":
            s.add_argument("file")
            s.add_argument("--chunked", type=int, default=0)
        if name == "pull":
            s.add_argument("outdir")
        s.add_argument("--user")
        s.add_argument("--token")
    args = p.parse_args()
    {"push": push, "pull": pull, "manifest": manifest}[args.cmd](args)


if __name__ == "__main__":
    main()
