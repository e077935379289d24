"""The fake DiT's picture of a prior, and the live client's verdict on it (no host needed)."""

from __future__ import annotations

import base64
import io

import glm_rules
import pytest

from omni_sizefix.tools.live import client, fake_engines

pytest.importorskip("numpy")
pytest.importorskip("PIL")


def _reply(image, status: int = 200) -> client.ImageReply:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    size, prior = client.decode_image(base64.b64encode(buffer.getvalue()).decode())
    return client.ImageReply(status=status, latency_s=0.1, body={}, size=size, prior=prior)


@pytest.mark.parametrize(("height", "width"), [(256, 256), (1024, 768), (768, 1024)])
def test_picture_shows_the_prior_it_was_given(height, width):
    prior = glm_rules.expected_prior(height, width)
    image = fake_engines.encode_prior(prior, height, width)
    assert image.size == (width, height)
    assert fake_engines.decode_prior(image) == prior
    assert client.verdict(_reply(image), f"{width}x{height}") == "ok"


def test_a_prior_cut_for_another_size_is_a_wrong_picture():
    # The right pixel size, but the prior of a 1024x1024 image squeezed into 768x1024.
    prior = glm_rules.expected_prior(1024, 1024)[: (1024 // 16) * (768 // 16)]
    image = fake_engines.encode_prior(prior, 1024, 768)
    assert client.verdict(_reply(image), "768x1024") == "wrong picture (prior cut for another size)"


def test_no_prior_is_no_grid_and_a_wrong_size_is_named():
    grey = fake_engines.encode_prior(None, 512, 512)
    assert fake_engines.decode_prior(grey) is None
    assert client.verdict(_reply(grey), "512x512") == "no prior grid in the picture"
    assert client.verdict(_reply(grey), "768x512") == "wrong size 512x512"


def test_an_http_error_is_reported_with_the_server_message():
    reply = client.ImageReply(status=400, latency_s=0.0, body={"message": "Invalid request"})
    assert client.verdict(reply, "1000x700") == "HTTP 400: Invalid request"


def test_the_dit_applies_the_pipelines_own_length_check(tmp_path):
    """The fake DiT's size and length check are vLLM-Omni's (needs the host's pipeline)."""
    pytest.importorskip("vllm_omni.diffusion.models.glm_image.pipeline_glm_image")
    from omni_sizefix.tools.simulation import model_folder

    folder = model_folder.build(tmp_path / "glm", mode="weightless")
    engine = fake_engines.FakeGlmImageDiTEngine(str(folder))
    with pytest.raises(ValueError, match="doesn't match dimensions"):
        engine.inputs({"height": 512, "width": 512, "extra": {"prior_token_ids": [1, 2, 3]}}, None)
    # 1000 is floored to upstream's multiple of 16: the DiT renders 992.
    prior = list(range((992 // 16) * (992 // 16)))
    prompt = {"height": 1000, "width": 1000, "extra": {"prior_token_ids": prior}}
    assert engine.inputs(prompt, None) == (992, 992, prior)
