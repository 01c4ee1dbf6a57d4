"""Answer generation: a remote OpenAI-compatible endpoint (a fake local server) and the local SmolLM2."""

from __future__ import annotations

import os

import pytest

from tests.retrieval.fake_llm import fake_llm
from textlatent.errors import InvalidInputError
from textlatent.retrieval.generate_llm import RemoteGenerator, UpstreamError, check_generation

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Does aspirin help?"}]


def test_remote_generate_and_stream() -> None:
    with fake_llm("Aspirin lowers the risk [1].") as (url, seen):
        gen = RemoteGenerator(url, model="tiny", api_key="sekret")
        assert gen.generate(MESSAGES, max_new_tokens=8) == "Aspirin lowers the risk [1]."
        pieces = list(gen.stream(MESSAGES, max_new_tokens=8, temperature=0.5))
    assert "".join(pieces).strip() == "Aspirin lowers the risk [1]."
    assert len(pieces) == 5
    first, second = seen
    assert first["body"] == {"model": "tiny", "messages": MESSAGES, "max_tokens": 8, "temperature": 0.0,
                             "stream": False}
    assert first["auth"] == "Bearer sekret"
    assert second["body"]["stream"] is True and second["body"]["temperature"] == 0.5


def test_remote_errors_are_upstream_errors() -> None:
    with fake_llm(status=500) as (url, _):
        gen = RemoteGenerator(url)
        with pytest.raises(UpstreamError, match="500"):
            gen.generate(MESSAGES, max_new_tokens=4)
        with pytest.raises(UpstreamError, match="500"):
            list(gen.stream(MESSAGES, max_new_tokens=4))
    with pytest.raises(UpstreamError):
        RemoteGenerator("http://127.0.0.1:9/v1/chat/completions", timeout=2).generate(MESSAGES, max_new_tokens=4)
    with pytest.raises(InvalidInputError):
        RemoteGenerator("ftp://example.org")


def test_streams_that_are_not_proper_server_sent_events_are_upstream_errors() -> None:
    """A stream cut before [DONE], or a JSON reply to a stream request, read as success before (a
    partial or empty answer as 'done'); a first chunk without choices (Azure's filter preamble) is skipped."""
    with fake_llm("fine answer", stream_style="azure") as (url, _):
        assert "".join(RemoteGenerator(url).stream(MESSAGES, max_new_tokens=4)).strip() == "fine answer"
    with fake_llm("partial answer", stream_style="cut") as (url, _), \
            pytest.raises(UpstreamError, match="before it finished"):
        list(RemoteGenerator(url).stream(MESSAGES, max_new_tokens=4))
    with fake_llm("whole answer", stream_style="json") as (url, _), \
            pytest.raises(UpstreamError, match="did not stream"):
        list(RemoteGenerator(url).stream(MESSAGES, max_new_tokens=4))


def test_keep_alive_pings_do_not_stretch_the_timeout() -> None:
    """httpx's timeout is per read; the stream also keeps a deadline of its own."""
    with fake_llm("late answer", stream_style="pings") as (url, _), \
            pytest.raises(UpstreamError, match="did not finish within 1 s"):
        list(RemoteGenerator(url, timeout=1.0).stream(MESSAGES, max_new_tokens=4))


def test_a_local_generator_that_cannot_load_is_unavailable_not_a_crash(tmp_path, monkeypatch) -> None:
    import textlatent.retrieval.generate_llm as gen_mod

    def broken(cache_dir=None):
        raise NotADirectoryError(20, "Not a directory", str(tmp_path / "file" / "sub"))

    monkeypatch.setattr(gen_mod, "local_model_dir", broken)
    with pytest.raises(gen_mod.GeneratorUnavailableError, match="could not be loaded") as info:
        gen_mod.LocalGenerator(device="cpu")
    assert info.value.status_code == 503


@pytest.mark.parametrize(("n", "t"), [(0, 0.0), (5000, 0.0), (True, 0.0), (8, -1.0), (8, 3.0)])
def test_generation_options_are_checked(n: object, t: object) -> None:
    with pytest.raises(InvalidInputError):
        check_generation(n, t)


@pytest.mark.slow  # ~40 s on 2 busy cores once converted; the first run converts the GGUF (1-3 min)
def test_local_smollm2_generates_a_few_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled GGUF, converted once into ~/.cache/textlatent (kept: it is what a server uses)."""
    monkeypatch.delenv("TEXTLATENT_CACHE_DIR", raising=False)
    pytest.importorskip("gguf")
    from textlatent.retrieval.generate_llm import LocalGenerator, gguf_path

    try:
        gguf_path()
    except Exception as exc:  # the package is installed by `make install`; say so when it is not
        pytest.skip(str(exc))
    gen = LocalGenerator(device="cpu")
    text = gen.generate(MESSAGES, max_new_tokens=8)
    assert isinstance(text, str) and text
    assert len(gen.tokenizer(text)["input_ids"]) <= 8
    streamed = "".join(gen.stream(MESSAGES, max_new_tokens=8)).strip()
    assert streamed == text  # greedy: the same tokens either way


def test_the_converted_smollm2_folder_is_keyed_by_the_gguf_it_came_from(tmp_path, monkeypatch) -> None:
    import textlatent.retrieval.generate_llm as gen_mod

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"first release")
    monkeypatch.setenv("TEXTLATENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gen_mod, "gguf_path", lambda: gguf)
    converted = tmp_path / "cache" / f"smollm2-135m-instruct-{gen_mod._file_key(gguf)}"
    converted.mkdir(parents=True)
    (converted / "config.json").write_text("{}")
    assert gen_mod.local_model_dir() == converted  # found, not converted again
    gguf.write_bytes(b"an upgraded package's weights")
    os.utime(gguf, ns=(1, 1))
    assert gen_mod._file_key(gguf) != converted.name.rsplit("-", 1)[1]  # a new file is a new folder
