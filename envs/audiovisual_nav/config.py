"""Settings of AudioVisualNav, one documented field each."""

from __future__ import annotations

from dataclasses import dataclass

from perception.settings import require, require_float, require_int

WHERE = "env AudioVisualNav"


@dataclass
class AudioVisualNavConfig:
    """AudioVisualNav settings; ``gymnasium.make`` keyword arguments have these names."""

    id: str = "sensorium/AudioVisualNav-v0"
    """gymnasium id these settings build (the factory strips it)."""
    map_size: int = 11
    """Cells per side of the square map, border walls included (1 cell = 1 m)."""
    min_room: int = 2
    """Smallest room side in cells; larger values give fewer, bigger rooms."""
    num_objects: int = 4
    """Objects in the map, the goal included; all drawn from one look distribution."""
    num_distractors: int = 1
    """Non-goal objects that play a distractor sound (noise-like, unlike the tonal goal)."""
    image_size: int = 64
    """Side of the square egocentric rgb and depth images, pixels."""
    fov_deg: float = 90.0
    """Horizontal field of view of the camera, degrees."""
    max_depth_m: float = 10.0
    """Depth readings are clipped to this range, metres."""
    sample_rate: int = 16000
    """Audio samples per second per ear."""
    control_hz: float = 10.0
    """Steps per second; the audio window is one control period long."""
    forward_m: float = 0.25
    """Distance of one forward action, metres."""
    turn_deg: float = 30.0
    """Angle of one turn action, degrees; 360 must be a multiple of it."""
    agent_radius_m: float = 0.18
    """Radius of the agent's body for collisions, metres."""
    success_radius_m: float = 1.0
    """Stopping within this geodesic distance of the goal is a success, metres."""
    max_steps: int = 250
    """Episode length limit (truncation), steps."""
    success_bonus: float = 10.0
    """Reward for a successful stop."""
    wrong_stop_penalty: float = 1.0
    """Reward subtracted for stopping outside the success radius (a false "found it")."""
    step_cost: float = 0.01
    """Reward subtracted every step."""
    distance_reward_scale: float = 1.0
    """Reward per metre of decrease of the geodesic distance to the goal."""
    wall_transmission: float = 0.35
    """Amplitude factor of a sound per wall between source and listener."""
    diffraction_gain: float = 0.7
    """Amplitude factor of the sound that goes round walls along the shortest open path
    (through doors); it arrives from that path's direction. 0 = walls only attenuate."""
    mic_noise: float = 0.003
    """Standard deviation of the microphones' self-noise, full scale = 1."""
    deaf_expert: str = "nearest"
    """The expert of episodes without hearing (``expert_actions_without``): 'nearest'
    walks to the object nearest the start (through walls: it knows the map), 'in_view'
    turns until an object is in view and walks to it (what a camera can learn)."""

    @property
    def audio_samples(self) -> int:
        return int(round(self.sample_rate / self.control_hz))

    @property
    def headings(self) -> int:
        return int(round(360.0 / self.turn_deg))

    def validate(self) -> None:
        require_int(WHERE, "map_size", self.map_size, 5, 63)
        require_int(WHERE, "min_room", self.min_room, 1, self.map_size)
        require_int(WHERE, "num_objects", self.num_objects, 1, 16)
        require_int(WHERE, "num_distractors", self.num_distractors, 0, self.num_objects - 1)
        require_int(WHERE, "image_size", self.image_size, 8, 512)
        require_float(WHERE, "fov_deg", self.fov_deg, 10.0, 170.0)
        require_float(WHERE, "max_depth_m", self.max_depth_m, 0.0, lo_open=True)
        require_int(WHERE, "sample_rate", self.sample_rate, 1000, 192000)
        require_float(WHERE, "control_hz", self.control_hz, 0.0, 1000.0, lo_open=True)
        require(WHERE, "control_hz", self.control_hz, self.audio_samples >= 16,
                "low enough that one period holds >= 16 audio samples")
        require_float(WHERE, "forward_m", self.forward_m, 0.0, 1.0, lo_open=True)
        require_float(WHERE, "turn_deg", self.turn_deg, 0.0, 180.0, lo_open=True)
        require(WHERE, "turn_deg", self.turn_deg, abs(self.headings * self.turn_deg - 360) < 1e-6,
                "a divisor of 360")
        require_float(WHERE, "agent_radius_m", self.agent_radius_m, 0.0, 0.45, lo_open=True)
        require_float(WHERE, "success_radius_m", self.success_radius_m, 0.0, lo_open=True)
        require_int(WHERE, "max_steps", self.max_steps, 1)
        require_float(WHERE, "success_bonus", self.success_bonus, 0.0)
        require_float(WHERE, "wrong_stop_penalty", self.wrong_stop_penalty, 0.0)
        require_float(WHERE, "step_cost", self.step_cost, 0.0)
        require_float(WHERE, "distance_reward_scale", self.distance_reward_scale, 0.0)
        require_float(WHERE, "wall_transmission", self.wall_transmission, 0.0, 1.0)
        require_float(WHERE, "diffraction_gain", self.diffraction_gain, 0.0, 1.0)
        require_float(WHERE, "mic_noise", self.mic_noise, 0.0, 1.0)
        require(WHERE, "deaf_expert", self.deaf_expert,
                self.deaf_expert in ("nearest", "in_view"), "'nearest' or 'in_view'")
