"""Reading another project's RLDS dataset through a key mapping: the LIBERO schema of OpenVLA/openpi."""

import json

import numpy as np
import pytest
from rlds_fixtures import libero_episode, libero_step_features, write_rlds

from robopolicy.cli import main
from robopolicy.data.key_mapping import libero_mapping, load_mapping_file, preset_names
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.errors import UserError
from robopolicy.train import checkpoint


@pytest.fixture(scope="module")
def libero_dataset(tmp_path_factory):
    rng = np.random.default_rng(0)
    episodes = [
        libero_episode(rng, 3, "put the bowl on the plate"),
        libero_episode(rng, 2, "open the drawer"),
        libero_episode(rng, 4, "put the bowl on the plate"),
    ]
    out = tmp_path_factory.mktemp("libero")
    return write_rlds(out, libero_step_features(), episodes, name="libero_spatial"), episodes


@pytest.mark.parametrize("mapping", ["libero", "auto"])
def test_libero_schema_reads_into_episodes(libero_dataset, mapping):
    path, written = libero_dataset
    read = load_episodes(path, mapping=mapping)
    assert len(read) == 3
    for episode in read:
        # Storage order is TFDS's; match each episode to what was written by its actions.
        [source] = [
            w for w in written if np.array_equal(np.stack([s["action"] for s in w["steps"]]), episode.action)
        ]
        steps = source["steps"]
        assert set(episode.frames) == {"agentview", "wrist"}
        np.testing.assert_array_equal(
            episode.frames["agentview"], np.stack([s["observation"]["image"] for s in steps])
        )
        np.testing.assert_array_equal(
            episode.frames["wrist"], np.stack([s["observation"]["wrist_image"] for s in steps])
        )
        assert episode.frames["agentview"].dtype == np.uint8 and episode.frames["agentview"].shape[1:] == (
            256,
            256,
            3,
        )
        np.testing.assert_array_equal(episode.state, np.stack([s["observation"]["state"] for s in steps]))
        assert episode.state.shape[1:] == (8,) and episode.action.shape[1:] == (7,)
        np.testing.assert_array_equal(episode.reward, [s["reward"] for s in steps])
        assert episode.instruction == steps[0]["language_instruction"] == episode.task
        assert episode.success


def test_data_info_and_check_on_the_libero_dataset(libero_dataset, capsys):
    path, _ = libero_dataset
    assert main(["data", "check", str(path), "--mapping", "libero"]) == 0
    assert main(["data", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after check's one-line verdict
    assert info["mapping"] == "libero" and info["episodes"] == 3 and info["steps"]["total"] == 9
    assert info["cameras"] == {"agentview": [256, 256, 3], "wrist": [256, 256, 3]}
    assert info["features"]["steps/observation/image"]["kind"] == "Image"
    assert info["tasks"]["put the bowl on the plate"]["episodes"] == 2
    assert len(info["stats"]["state"]["q99"]) == 8 and len(info["stats"]["action"]["mean"]) == 7


def test_custom_toml_mapping(libero_dataset, tmp_path):
    path, _ = libero_dataset
    toml = tmp_path / "front_only.toml"
    toml.write_text(
        'cameras = { "observation/image" = "front" }\nstate = "observation/joint_state"\naction_dim = 7\n'
    )
    mapping = load_mapping_file(toml)
    assert mapping.name == "front_only" and mapping.cameras == {"observation/image": "front"}
    [episode] = [e for e in load_episodes(path, mapping=str(toml)) if len(e) == 2]
    assert set(episode.frames) == {"front"} and episode.state.shape == (2, 7)

    toml.write_text('camera = { "observation/image" = "front" }\n')
    with pytest.raises(UserError, match=r"front_only.toml: unknown key\(s\) 'camera'; known: "):
        load_mapping_file(toml)
    # Values are checked against the fields' types, naming the file and the field.
    for text, message in [
        ('action_dim = "7"\n', r"front_only.toml: field 'action_dim' must be an integer, got '7'"),
        ("image_shape = [64, 64]\n", r"field 'image_shape' must be a list of 3 values"),
        ("cameras = { image = 3 }\n", r"field 'cameras.image' must be a string, got 3"),
        ('float_dtype = "float16"\n', r"field 'float_dtype' must be one of 'float32', 'floating'"),
        ("state_dim = 0\n", r"front_only.toml: key mapping 'front_only': state_dim must be positive"),
    ]:
        toml.write_text(text)
        with pytest.raises(UserError, match=message):
            load_mapping_file(toml)
    with pytest.raises(UserError, match=r"unknown key mapping 'liberoo'"):
        load_episodes(path, mapping="liberoo")
    with pytest.raises(UserError, match=r"no such key-mapping file"):
        load_mapping_file(tmp_path / "nope.toml")


@pytest.mark.parametrize("size", [64, 224])
def test_libero_layout_at_any_image_size_passes_auto_check(tmp_path, size):
    rng = np.random.default_rng(size)
    episodes = [libero_episode(rng, 3, "pick", size=size), libero_episode(rng, 2, "place", size=size)]
    path = write_rlds(tmp_path, libero_step_features(size), episodes, name="libero_resized")
    assert main(["data", "check", str(path), "--mapping", "auto"]) == 0
    assert load_episodes(path)[0].frames["wrist"].shape[1:] == (size, size, 3)


def test_libero_preset_is_the_published_schema():
    libero = libero_mapping()
    assert libero.name == "libero" and "libero" in preset_names()
    assert libero.cameras == {"observation/image": "agentview", "observation/wrist_image": "wrist"}
    specs = libero.step_specs()
    # Images of any size (256 px as published, or resized copies), the same in every episode.
    assert libero.image_shape is None
    assert specs["observation/image"].shape == specs["observation/wrist_image"].shape == (None, None, 3)
    assert specs["observation/state"].shape == (8,) and specs["action"].shape == (7,)
    assert specs["observation/image"].dtype == "uint8" and specs["action"].dtype == "float32"
    assert libero.instruction == "language_instruction"


def test_train_reads_a_dataset_through_a_custom_mapping(libero_dataset, tmp_path, capsys):
    path, _ = libero_dataset
    toml = tmp_path / "front_only.toml"
    toml.write_text(
        'cameras = { "observation/image" = "front" }\nstate = "observation/joint_state"\naction_dim = 7\n'
    )
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--dataset", str(path), "--mapping", str(toml)]
    args += ["--policy.cameras", "front", "--steps", "2", "--out", str(run)]
    assert main(args) == 0
    _, step, meta = checkpoint.load_meta(run)
    assert step == 2 and meta["policy_config"]["cameras"] == ["front"]
    # Without the mapping, the foreign camera name is not in the dataset: one line, exit 2.
    assert main([*args[:5], "--policy.cameras", "front", "--steps", "2", "--out", str(tmp_path / "r2")]) == 2
    assert "front" in capsys.readouterr().err


def test_named_mappings_from_a_user_folder(libero_dataset, tmp_path, monkeypatch):
    """A wheel install cannot add files to datasets/key_mappings/: ROBOPOLICY_MAPPING_PATH names more
    folders, searched first, so `--mapping my_robot` works by name."""
    path, _ = libero_dataset
    folder = tmp_path / "mappings"
    folder.mkdir()
    shipped = libero_mapping()
    (folder / "my_robot.toml").write_text(
        'cameras = { "observation/image" = "front" }\n'
        'state = "observation/state"\naction = "action"\ninstruction = "language_instruction"\n'
    )
    (folder / "libero.toml").write_text('cameras = { "observation/image" = "shadowed" }\n')
    assert "my_robot" not in preset_names()
    with pytest.raises(UserError, match="my_robot"):
        load_episodes(path, mapping="my_robot")
    monkeypatch.setenv("ROBOPOLICY_MAPPING_PATH", str(folder))
    assert "my_robot" in preset_names()
    episodes = load_episodes(path, mapping="my_robot")
    assert sorted(episodes[0].frames) == ["front"]
    # The user's folder shadows a shipped name, but `auto` keeps detecting the shipped LIBERO layout.
    assert sorted(load_episodes(path, mapping="libero")[0].frames) == ["shadowed"]
    assert libero_mapping() == shipped
    assert sorted(load_episodes(path, mapping="auto")[0].frames) == ["agentview", "wrist"]
