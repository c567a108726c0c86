"""``coreseal setup``: put the host in sealed mode."""

import os

import click

from .. import config, events
from ..capture.metadata import hostname
from ..errors import UsageError
from ..fsutil import private_dir
from ..keys.cache import keyring_works, open_cache
from ..wrapkey import KIND_HOST
from .common import get_paths, info, warn

HOST_KEY_NAME = "host-1"


@click.command()
@click.option(
    "--provider",
    "provider_type",
    type=click.Choice(["native", "kmip"]),
    default="native",
    show_default=True,
    help="Where keys come from.",
)
@click.option(
    "--kmip-server",
    "servers",
    multiple=True,
    metavar="HOST:PORT",
    help="A KMIP server; repeat for a cluster, tried in order.",
)
@click.option(
    "--kmip-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Client certificate (PEM) for the KMIP servers.",
)
@click.option(
    "--kmip-key",
    type=click.Path(exists=True, dir_okay=False),
    help="The client certificate's private key (PEM).",
)
@click.option(
    "--kmip-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificate that signed the servers' certificates.",
)
@click.option(
    "--kmip-cluster",
    metavar="NAME",
    help="Name of the cluster in key IDs (default: the first server).",
)
@click.option(
    "--kmip-timeout",
    type=click.FloatRange(0.1, 120),
    default=5.0,
    show_default=True,
    help="Seconds to wait for each server.",
)
@click.option(
    "--cache",
    "cache_backend",
    type=click.Choice(["auto", "keyring", "file"]),
    default="auto",
    show_default=True,
    help="Key cache: the kernel keyring (memory only) or a root-only "
    "directory; auto picks the keyring when the kernel allows.",
)
def setup(
    provider_type,
    servers,
    kmip_cert,
    kmip_key,
    kmip_ca,
    kmip_cluster,
    kmip_timeout,
    cache_backend,
) -> None:
    """Put this host in sealed mode: make the host key and cache it."""
    paths = get_paths()
    cfg = config.load(paths)
    if cache_backend == "auto":
        cache_backend = "keyring" if keyring_works() else "file"
    if provider_type == "native":
        key = _native_host_key(paths, cfg)
    else:
        key = _kmip_host_key(
            paths,
            cfg,
            servers,
            kmip_cert,
            kmip_key,
            kmip_ca,
            kmip_cluster,
            kmip_timeout,
        )
    cfg["sealed_mode"]["enabled"] = True
    cfg["provider"]["type"] = provider_type
    old = cfg["keys"]["host_key_id"]
    if old and old != key.key_id:
        previous = cfg["keys"].setdefault("previous_host_keys", [])
        if old not in previous:
            previous.append(old)
    config.set_host_key(cfg, key)
    old_backend = cfg["cache"]["backend"]
    if old_backend not in ("auto", cache_backend):
        # Keys must not linger, unseen, in the cache we stop using.
        open_cache(paths, old_backend).forget()
    cfg["cache"]["backend"] = cache_backend
    config.save(paths, cfg)
    private_dir(paths.dumps)
    open_cache(paths, cache_backend).put(key)
    events.record(
        paths,
        "sealed-mode-enabled",
        provider=provider_type,
        key_id=key.key_id,
        cache=cache_backend,
    )
    click.echo(f"sealed mode: enabled (root {paths.root})")
    click.echo(f"host key: {key.key_id}")
    click.echo(f"key cache: {cache_backend}")
    if provider_type == "native":
        info("back up the native provider now, or a lost host loses every dump:")
        info("  coreseal provider backup --password-file FILE OUT")


def _native_host_key(paths, cfg):
    from ..keys.native import NativeProvider, state_path

    if os.path.exists(state_path(paths)):
        provider = NativeProvider.load(paths)
        info(f"using the existing native provider {provider.provider_id}")
    else:
        provider = NativeProvider.create()
    current = cfg["keys"]["host_key_id"]
    if current and provider.owns(current):
        key = provider.get_key(current)
    elif HOST_KEY_NAME in provider.key_names():
        key = provider.get_key(provider.key_id(HOST_KEY_NAME))
    else:
        key = provider.create_key(HOST_KEY_NAME, KIND_HOST)
    provider.save(paths)
    return key


def _kmip_host_key(paths, cfg, servers, cert, key, ca, cluster, timeout):
    from ..keys.kmip import (
        KmipProvider,
        KmipSettings,
        check_cluster,
        check_timeout,
        parse_server,
    )

    if not servers or not cert or not key or not ca:
        raise UsageError(
            "--provider kmip needs --kmip-server, --kmip-cert, --kmip-key and --kmip-ca"
        )
    try:
        parsed = tuple(parse_server(s) for s in servers)
        # Checked before connecting: nothing is made on the server for a
        # setup that cannot finish.
        name = check_cluster(cluster or servers[0])
        timeout = check_timeout(timeout)
    except ValueError as e:
        raise UsageError(str(e)) from None
    settings = KmipSettings(
        name,
        parsed,
        os.path.abspath(cert),
        os.path.abspath(key),
        os.path.abspath(ca),
        timeout,
    )
    old = (cfg.get("kmip") or {}).get("cluster")
    if isinstance(old, str) and old != name:
        warn(
            f"key IDs made so far name KMIP cluster {old}; under {name} they "
            f"will be another provider's (--kmip-cluster {old} keeps them)"
        )
    provider = KmipProvider(settings, paths.state)
    try:
        provider.check()
        current = cfg["keys"]["host_key_id"]
        if current and provider.owns(current):
            fetched = provider.fetch(current, KIND_HOST)
            if fetched.can_seal:
                info(f"keeping the host key {current}")
                cfg["kmip"] = settings.to_config()
                return fetched.key
        made = provider.create_key(host_key_name(), KIND_HOST)
    finally:
        provider.close()
    cfg["kmip"] = settings.to_config()
    return made


def host_key_name() -> str:
    from ..events import now_iso

    return f"coreseal host {hostname()} {now_iso()}"


def register(cli: click.Group) -> None:
    cli.add_command(setup)
