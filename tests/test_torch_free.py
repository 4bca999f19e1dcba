"""Reading results, plans and manifests needs neither torch nor transformers; the plain copies of upstream's
defaults that make this possible are upstream's values."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from ltx_pipelines.utils import constants

from ltxcore import upstream_defaults
from ltxcore.request import GuiderSettings, ImageCondition, LoraSpec, RenderRequest


def test_the_results_reader_imports_without_torch_or_transformers():
    code = (
        "import sys\n"
        "from runstore.results import read_results\n"
        "from runstore.latest import latest_rows, matching_rows\n"
        "import manifests.item, manifests.load, runstore.plan\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    assert done.stdout.strip() == "[]"


def test_the_plain_defaults_are_upstreams():
    params = constants.LTX_2_3_PARAMS
    request = RenderRequest(audio="a.wav", prompt="p")
    assert (request.seed, request.height, request.width) == (params.seed, params.stage_2_height, params.stage_2_width)
    assert (request.frame_rate, request.num_inference_steps) == (params.frame_rate, params.num_inference_steps)
    assert request.negative_prompt == constants.DEFAULT_NEGATIVE_PROMPT
    assert dataclasses.asdict(GuiderSettings().to_upstream()) == dataclasses.asdict(params.video_guider_params)
    assert ImageCondition("i.png").crf == constants.DEFAULT_IMAGE_CRF
    assert LoraSpec("l.safetensors").strength == constants.DEFAULT_LORA_STRENGTH
    assert len(constants.DISTILLED_SIGMA_VALUES) - 1 == upstream_defaults.DISTILLED_STEPS
