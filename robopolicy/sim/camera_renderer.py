"""One reusable offscreen renderer that draws several named cameras of a scene into uint8 images."""

from __future__ import annotations

import weakref

import mujoco
import numpy as np

from robopolicy.tasks.scene_mjcf import RenderConfig


class CameraRenderer:
    """Renders (size, size, 3) uint8 RGB images, upright (row 0 is the top of the picture).

    A single GL context and scene are shared by all cameras; each `render` call allocates only the
    returned image, so callers may keep it without copying.
    """

    def __init__(
        self, model: mujoco.MjModel, size: int, cameras: tuple[str, ...], options: RenderConfig
    ) -> None:
        for name in cameras:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
                raise ValueError(f"camera '{name}' is not in the scene")
        self._cameras = cameras
        self._renderer = mujoco.Renderer(model, height=size, width=size)
        # An env never closed by its user would otherwise free its GL context in mujoco's __del__ during
        # interpreter teardown, which prints an "Exception ignored" traceback; finalize runs it at exit.
        self._finalizer = weakref.finalize(self, self._renderer.close)
        # Scene flags persist across update_scene calls; these two dominate CPU render cost.
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = int(options.shadows)
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = int(options.reflections)

    @property
    def cameras(self) -> tuple[str, ...]:
        return self._cameras

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """{camera name: (size, size, 3) uint8} for the current kinematics in `data`."""
        images: dict[str, np.ndarray] = {}
        for name in self._cameras:
            self._renderer.update_scene(data, camera=name)
            images[name] = self._renderer.render()
        return images

    def close(self) -> None:
        self._finalizer()
