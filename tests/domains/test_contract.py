"""The common test of the domain contract: every entry of DOMAINS passes it.

It checks what the shared machinery (the CLI, the batch export, the page catalogue,
``build_defaults``) relies on, with real values: the CLI parser a domain gets, its options'
defaults, its batch job's partition size, that unknown models are refused with the valid names,
that its page exists, and that its default model is listed first by its service.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lucid.cli import build_parser, main, request_from
from lucid.core.errors import ModelNotFoundError
from lucid.domains import DOMAINS
from lucid.domains.base import COMMANDS, BatchJob, Domain, ModelCard

ROOT = Path(__file__).resolve().parents[2]
NAMES = list(DOMAINS)


def test_the_table_lists_the_five_domains_in_menu_order():
    assert NAMES == ["nlp", "vision", "medical", "finance", "recommend"]
    assert all(DOMAINS[name].name == name for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_domain_fills_in_the_contract(name):
    domain = DOMAINS[name]
    assert isinstance(domain, Domain) and isinstance(domain.batch, BatchJob)
    assert (ROOT / domain.page).is_file()
    assert domain.input_kind in ("table", "images")
    assert domain.title and domain.summary.endswith(".") and domain.icon.startswith(":material/")
    assert domain.batch.partition_rows >= 1
    flags = [o.flag for o in domain.options]
    assert len(flags) == len(set(flags)) and all(f.startswith("--") for f in flags)
    # The batch job travels to Dask workers by pickling: it must survive the round trip.
    assert type(pickle.loads(pickle.dumps(domain.batch))) is type(domain.batch)


@pytest.mark.parametrize("name", NAMES)
def test_cli_parser_has_the_shared_arguments_and_the_domains_own_options(name):
    domain = DOMAINS[name]
    parser = build_parser(domain)
    for command in COMMANDS:
        argv = [command, "input"]
        if command == "train":
            argv += ["--name", "mine"]
        if command == "score":
            argv += ["--out", "out.csv"]
        request = request_from(parser.parse_args(argv))
        assert request.command == command and request.data == "input" and request.model is None
        own = {o.key: o for o in domain.options_for(command)}
        assert set(request.options) == set(own)  # nothing shared leaks into the domain's options
        for key, option in own.items():
            expected = False if option.flag_only else option.default
            assert request.options[key] == expected
        if command == "score":
            args = parser.parse_args(argv)
            assert args.partition_rows == domain.batch.partition_rows


@pytest.mark.parametrize("name", NAMES)
def test_unknown_model_is_refused_with_the_valid_names(name, model_store):
    service = DOMAINS[name].service()
    with pytest.raises(ModelNotFoundError) as info:
        service.check_name("no-such-model")
    assert DOMAINS[name].default_model in info.value.valid


@pytest.mark.parametrize("name", NAMES)
def test_service_lists_the_default_model_and_cards_it(name, model_store):
    domain = DOMAINS[name]
    service = domain.service()
    assert domain.default_model in service.model_names()
    assert service.model_names()[0] in service.registry.names()
    if service.is_built(domain.default_model):
        card = service.card(domain.default_model)
        assert isinstance(card, ModelCard)
        sections = card.sections()
        assert sections["Licence"] and sections["Weights"] and sections["Training and test data"]


@pytest.mark.parametrize("name", NAMES)
def test_cli_score_of_a_missing_input_fails_with_a_message(name, tmp_path, capsys, model_store):
    out = tmp_path / "out.csv"
    assert main([name, "score", str(tmp_path / "missing.csv"), "--out", str(out)]) == 1
    assert "No such file" in capsys.readouterr().err and not out.exists()
