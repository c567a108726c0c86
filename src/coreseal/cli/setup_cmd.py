"""``coreseal setup``: put the host in sealed mode."""

import click

from .. import config, events
from ..fsutil import private_dir
from ..keys.cache import keyring_works, open_cache
from ..keys.native import NativeProvider, state_path
from ..wrapkey import KIND_HOST
from .common import get_paths, info

HOST_KEY_NAME = "host-1"


@click.command()
@click.option(
    "--provider",
    "provider_type",
    type=click.Choice(["native"]),
    default="native",
    show_default=True,
    help="Where keys come from.",
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
def setup(provider_type: str, cache_backend: str) -> None:
    """Put this host in sealed mode with the built-in native key provider."""
    import os

    paths = get_paths()
    cfg = config.load(paths)
    if cache_backend == "auto":
        cache_backend = "keyring" if keyring_works() else "file"
    if os.path.exists(state_path(paths)):
        provider = NativeProvider.load(paths)
        info(f"using the existing native provider {provider.provider_id}")
    else:
        provider = NativeProvider.create()
    if HOST_KEY_NAME in provider.key_names():
        key = provider.get_key(provider.key_id(HOST_KEY_NAME))
    else:
        key = provider.create_key(HOST_KEY_NAME, KIND_HOST)
    provider.save(paths)
    cfg["sealed_mode"]["enabled"] = True
    cfg["provider"]["type"] = provider_type
    cfg["keys"]["host_key_id"] = key.key_id
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
    info("back up the native provider now, or a lost host loses every dump:")
    info("  coreseal provider backup --password-file FILE OUT")


def register(cli: click.Group) -> None:
    cli.add_command(setup)
