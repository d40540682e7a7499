"""docker-compose.yml names only what exists: every command of the xmargin image parses
with the CLI's own options, every XMARGIN__* variable is a key of the settings tree, and
the config the node and workers read is where the deployment step writes it."""

from __future__ import annotations

from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel

from devnet.localnet import REPO
from xmargin.cli import app
from xmargin.config import AttesterConfig, NodeSettings

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
OURS = {name: s for name, s in COMPOSE["services"].items() if s.get("build") == "."}


def parse(args: list[str]) -> Any:
    """The context the CLI would run ``args`` in (options parsed, nothing run)."""
    command: Any = typer.main.get_command(app)
    while hasattr(command, "commands"):  # a group: descend to the named command
        name, args = args[0], args[1:]
        assert name in command.commands, f"no command {name!r}"
        command = command.commands[name]
    return command.make_context(command.name, list(args))


def settings_key(path: list[str], model: type[BaseModel] = NodeSettings) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    nested: Any = field.annotation
    return isinstance(nested, type) and issubclass(nested, BaseModel) and settings_key(
        path[1:], nested)


def test_every_command_of_the_image_parses() -> None:
    assert {"deploy", "node", "worker"} <= OURS.keys()
    for service in OURS.values():
        parse(list(service["command"]))  # raises on an unknown command or option
    with pytest.raises(Exception, match="No such option: --bogus"):
        parse(["node", "run", "--bogus"])


def test_every_environment_variable_is_a_settings_key() -> None:
    for name, service in OURS.items():
        attester = service["command"][0] == "attester"
        prefix, model = (("XMARGIN_ATTESTER__", AttesterConfig) if attester
                         else ("XMARGIN__", NodeSettings))
        for variable in service.get("environment", {}):
            assert variable.startswith(prefix), (name, variable)
            path = variable.removeprefix(prefix).lower().split("__")
            assert settings_key(path, model), f"{variable} is no key of {model.__name__}"


def test_three_attesters_each_with_its_own_config() -> None:
    attesters = [s for s in OURS.values() if s["command"][0] == "attester"]
    configs = {str(parse(list(s["command"])).params["config"]) for s in attesters}
    assert configs == {f"/etc/xmargin/attester-{i}.toml" for i in range(3)}


def test_the_config_read_is_the_one_the_deployment_writes() -> None:
    def mounts(service: dict[str, Any]) -> dict[str, str]:
        return {v.split(":")[1]: v.split(":")[0] for v in service.get("volumes", [])}

    out = parse(list(OURS["deploy"]["command"])).params["out"]
    written = mounts(OURS["deploy"])[str(out)]
    for name in ("node", "worker", "attester-0", "attester-1", "attester-2"):
        config = parse(list(OURS[name]["command"])).params["config"]
        assert mounts(OURS[name]).get(str(config.parent)) == written, name
        assert OURS[name]["depends_on"]["deploy"] == {
            "condition": "service_completed_successfully"}
