"""The egocentric camera: a column raycaster with floor casting and object sprites.

One ray per image column walks the wall grid (DDA); walls are shaded by
distance and face, with dark seams at cell edges and a baseboard; the floor is
a checkerboard of 0.5 m tiles; objects are upright sprites depth-tested per
column. Depth is the z-distance along the view axis, as a depth camera gives.
"""

from __future__ import annotations

import math

import numpy as np

from envs.jit import kernel

WALL_HEIGHT_M = 2.0
CAMERA_HEIGHT_M = 1.0
OBJECT_HEIGHT_M = 0.7
OBJECT_WIDTH_M = 0.5
CEILING_RGB = (205.0, 200.0, 190.0)
FLOOR_RGB = (120.0, 104.0, 88.0)


@kernel
def _shade(dist: float) -> float:
    return 1.0 / (1.0 + 0.12 * dist)


@kernel
def _put(rgb: np.ndarray, r: int, c: int, red: float, green: float, blue: float) -> None:
    rgb[r, c, 0] = np.uint8(min(red, 255.0))
    rgb[r, c, 1] = np.uint8(min(green, 255.0))
    rgb[r, c, 2] = np.uint8(min(blue, 255.0))


@kernel
def render_view(
    rgb: np.ndarray,
    depth: np.ndarray,
    zbuf: np.ndarray,
    grid: np.ndarray,
    palette: np.ndarray,
    ax: float,
    ay: float,
    heading: float,
    tan_half_fov: float,
    max_depth: float,
    obj_x: np.ndarray,
    obj_y: np.ndarray,
    obj_rgb: np.ndarray,
    obj_shape: np.ndarray,
) -> None:
    """Draw the view from (ax, ay) facing `heading` into rgb (H, W, 3) and depth (H, W, 1)."""
    h, w = rgb.shape[0], rgb.shape[1]
    size = grid.shape[0]
    focal = 0.5 * w / tan_half_fov
    horizon = 0.5 * h
    fx, fy = math.cos(heading), math.sin(heading)
    px, py = -fy * tan_half_fov, fx * tan_half_fov  # camera plane, to the right
    for c in range(w):
        cam = 2.0 * (c + 0.5) / w - 1.0
        rdx, rdy = fx + px * cam, fy + py * cam
        mx, my = int(math.floor(ax)), int(math.floor(ay))
        t_dx = abs(1.0 / rdx) if rdx != 0.0 else 1e30
        t_dy = abs(1.0 / rdy) if rdy != 0.0 else 1e30
        if rdx < 0:
            sx, t_x = -1, (ax - mx) * t_dx
        else:
            sx, t_x = 1, (mx + 1.0 - ax) * t_dx
        if rdy < 0:
            sy, t_y = -1, (ay - my) * t_dy
        else:
            sy, t_y = 1, (my + 1.0 - ay) * t_dy
        side = 0
        for _ in range(4 * size):
            if t_x < t_y:
                t_x += t_dx
                mx += sx
                side = 0
            else:
                t_y += t_dy
                my += sy
                side = 1
            if mx < 0 or my < 0 or mx >= size or my >= size or grid[my, mx] == 1:
                break
        perp = (t_x - t_dx) if side == 0 else (t_y - t_dy)
        perp = max(perp, 1e-3)
        zbuf[c] = perp
        u = (ay + perp * rdy) if side == 0 else (ax + perp * rdx)
        u -= math.floor(u)
        k = (mx * 7 + my * 13) % palette.shape[0]
        wall_shade = _shade(perp) * (1.0 if side == 0 else 0.78)
        if u < 0.04 or u > 0.96:
            wall_shade *= 0.55
        top = horizon - focal * (WALL_HEIGHT_M - CAMERA_HEIGHT_M) / perp
        bottom = horizon + focal * CAMERA_HEIGHT_M / perp
        wall_depth = min(perp, max_depth)
        for r in range(h):
            y = r + 0.5
            if y < top:  # ceiling
                dist = focal * (WALL_HEIGHT_M - CAMERA_HEIGHT_M) / (horizon - y)
                s = _shade(dist)
                _put(rgb, r, c, CEILING_RGB[0] * s, CEILING_RGB[1] * s, CEILING_RGB[2] * s)
                depth[r, c, 0] = min(dist, max_depth)
            elif y > bottom:  # floor
                dist = focal * CAMERA_HEIGHT_M / (y - horizon)
                wx, wy = ax + dist * rdx, ay + dist * rdy
                tile = (int(math.floor(wx * 2.0)) + int(math.floor(wy * 2.0))) & 1
                s = _shade(dist) * (1.0 if tile == 0 else 0.82)
                _put(rgb, r, c, FLOOR_RGB[0] * s, FLOOR_RGB[1] * s, FLOOR_RGB[2] * s)
                depth[r, c, 0] = min(dist, max_depth)
            else:
                height = CAMERA_HEIGHT_M - (y - horizon) * perp / focal
                s = wall_shade * (0.6 if height < 0.15 else 1.0)
                _put(rgb, r, c, palette[k, 0] * s, palette[k, 1] * s, palette[k, 2] * s)
                depth[r, c, 0] = wall_depth
    _draw_objects(rgb, depth, zbuf, ax, ay, fx, fy, focal, horizon, max_depth,
                  obj_x, obj_y, obj_rgb, obj_shape)


@kernel
def _draw_objects(rgb, depth, zbuf, ax, ay, fx, fy, focal, horizon, max_depth,
                  obj_x, obj_y, obj_rgb, obj_shape) -> None:
    """Sprites far to near, each column depth-tested against the walls."""
    h, w = rgb.shape[0], rgb.shape[1]
    n = obj_x.shape[0]
    z = np.empty(n)
    lat = np.empty(n)
    for i in range(n):
        dx, dy = obj_x[i] - ax, obj_y[i] - ay
        z[i] = dx * fx + dy * fy
        lat[i] = dx * -fy + dy * fx
    order = np.argsort(-z)
    for oi in range(n):
        i = order[oi]
        zi = z[i]
        if zi < 0.15:
            continue
        centre = 0.5 * w + focal * lat[i] / zi
        half_w = focal * 0.5 * OBJECT_WIDTH_M / zi
        top = horizon + focal * (CAMERA_HEIGHT_M - OBJECT_HEIGHT_M) / zi
        bottom = horizon + focal * CAMERA_HEIGHT_M / zi
        c0 = max(int(centre - half_w), 0)
        c1 = min(int(centre + half_w) + 1, w)
        r0 = max(int(top), 0)
        r1 = min(int(bottom) + 1, h)
        s = _shade(zi)
        red, green, blue = obj_rgb[i, 0] * s, obj_rgb[i, 1] * s, obj_rgb[i, 2] * s
        d = min(zi, max_depth)
        for c in range(c0, c1):
            if zi >= zbuf[c]:
                continue
            lx = (c + 0.5 - centre) / half_w  # -1 .. 1 across the sprite
            edge = 0.75 + 0.25 * (1.0 - lx * lx)  # rounded shading
            for r in range(r0, r1):
                ly = (r + 0.5 - top) / max(bottom - top, 1e-6)  # 0 top .. 1 bottom
                if ly < 0.0 or ly > 1.0:
                    continue
                if obj_shape[i] == 1 and abs(lx) > 0.55:  # slim column
                    continue
                if obj_shape[i] == 2 and abs(lx) > ly:  # cone
                    continue
                _put(rgb, r, c, red * edge, green * edge, blue * edge)
                depth[r, c, 0] = d


@kernel
def objects_in_view(grid: np.ndarray, ax: float, ay: float, heading: float,
                    tan_half_fov: float, within: float, obj_pos: np.ndarray,
                    out: np.ndarray) -> None:
    """out[j]: object j's centre is in the camera's field of view, at most `within` metres
    away, with no wall between (the line of sight sampled every 5 cm)."""
    fx, fy = math.cos(heading), math.sin(heading)
    size = grid.shape[0]
    for j in range(obj_pos.shape[0]):
        dx, dy = obj_pos[j, 0] - ax, obj_pos[j, 1] - ay
        z = dx * fx + dy * fy
        lat = -dx * fy + dy * fx
        out[j] = z > 0.15 and abs(lat) <= z * tan_half_fov and math.hypot(dx, dy) <= within
        if not out[j]:
            continue
        n = int(math.hypot(dx, dy) / 0.05) + 1
        for k in range(1, n):
            x, y = ax + dx * k / n, ay + dy * k / n
            mx, my = int(math.floor(x)), int(math.floor(y))
            if mx < 0 or my < 0 or mx >= size or my >= size or grid[my, mx] == 1:
                out[j] = False
                break
