"""A top-down picture of one AudioVisualNav world, for people (never an observation)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from envs.audiovisual_nav.env import AudioVisualNavVectorEnv

FLOOR_BGR = (235, 235, 235)
WALL_BGR = (60, 60, 60)
AGENT_BGR = (255, 255, 255)
OUTLINE_BGR = (0, 0, 0)
GOAL_RING_BGR = (0, 0, 230)
DISTRACTOR_RING_BGR = (200, 120, 0)


def draw_top_down(env: AudioVisualNavVectorEnv, world: int, size: int, t: int = 0) -> np.ndarray:
    """BGR image (size, size, 3): walls, objects in their colours, sound rings, the agent.

    The goal's sound rings are red, distractors' orange; rings expand with
    frame index `t`.
    """
    w = env.worlds
    grid = w.grid[world]
    cells = grid.shape[0]
    img = np.where(grid[..., None] == 1, np.array(WALL_BGR, np.uint8),
                   np.array(FLOOR_BGR, np.uint8)).astype(np.uint8)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
    px = size / cells

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x * px)), int(round(y * px))

    for j in range(w.obj_pos.shape[1]):
        x, y = w.obj_pos[world, j]
        sid = w.src_id[world, j]
        if sid >= 0:
            colour = GOAL_RING_BGR if j == 0 else DISTRACTOR_RING_BGR
            for k in range(3):
                r = ((t * 0.15 + k / 3.0) % 1.0) * 1.2 * px
                cv2.circle(img, pt(x, y), int(r), colour, 1, cv2.LINE_AA)
        rgb = w.obj_rgb[world, j]
        cv2.circle(img, pt(x, y), max(int(0.25 * px), 3),
                   (int(rgb[2]), int(rgb[1]), int(rgb[0])), -1, cv2.LINE_AA)
        if j == 0:
            cv2.circle(img, pt(x, y), int(env.cfg.success_radius_m * px), GOAL_RING_BGR, 1,
                       cv2.LINE_AA)
    x, y = w.pos[world]
    th = w.heading[world] * math.radians(env.cfg.turn_deg)
    half = math.radians(env.cfg.fov_deg) / 2
    for a in (th - half, th + half):
        cv2.line(img, pt(x, y), pt(x + 1.5 * math.cos(a), y + 1.5 * math.sin(a)),
                 (120, 120, 120), 1, cv2.LINE_AA)
    radius = max(int(env.cfg.agent_radius_m * px), 3)
    cv2.circle(img, pt(x, y), radius, AGENT_BGR, -1, cv2.LINE_AA)
    cv2.circle(img, pt(x, y), radius, OUTLINE_BGR, 1, cv2.LINE_AA)
    cv2.line(img, pt(x, y), pt(x + 0.6 * math.cos(th), y + 0.6 * math.sin(th)), OUTLINE_BGR, 2,
             cv2.LINE_AA)
    return img
