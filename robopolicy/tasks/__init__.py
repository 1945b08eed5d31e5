"""Task definitions and scene composition: the task format and its loader, where tasks are found, the
object library, the MJCF of a task's scene, and the suites. No simulation runs here; `robopolicy.sim`
builds envs from these definitions.
"""
