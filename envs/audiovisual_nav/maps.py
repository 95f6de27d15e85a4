"""Indoor maps: generation, collision, and geodesic distance (compiled kernels).

A map is a square grid of 1 m cells, 1 = wall. Rooms come from recursive
division: a chamber is split by a wall with a one-cell door, and split again
until its rooms are small. Geodesic distances live on a finer grid
(``FINE`` sub-cells per cell) whose free sub-cells keep the agent's body
clear of walls.
"""

from __future__ import annotations

import math

import numpy as np

from envs.jit import kernel, randint, uniform

FINE = 4  # sub-cells per cell side for the distance field
UNREACHABLE = np.float32(1e6)


@kernel
def generate_map(grid: np.ndarray, states: np.ndarray, w: int, min_room: int) -> None:
    """Fill ``grid`` (S, S) with walls: border, then recursive division into rooms.

    Walls never block a door: a split line is only placed where both of its
    ends meet solid wall.
    """
    size = grid.shape[0]
    grid[:, :] = 0
    grid[0, :] = 1
    grid[size - 1, :] = 1
    grid[:, 0] = 1
    grid[:, size - 1] = 1
    # chamber stack: x0, x1, y0, y1 inclusive free-cell bounds
    stack = np.empty((4 * size * size, 4), np.int64)
    top = 0
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 1, size - 2, 1, size - 2
    top = 1
    cand = np.empty(size, np.int64)
    while top > 0:
        top -= 1
        x0, x1, y0, y1 = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        width, height = x1 - x0 + 1, y1 - y0 + 1
        can_v = width >= 2 * min_room + 1
        can_h = height >= 2 * min_room + 1
        if not (can_v or can_h):
            continue
        if can_v and can_h:
            vertical = width > height or (width == height and uniform(states, w) < 0.5)
        else:
            vertical = can_v
        n = 0
        if vertical:  # wall along a column x = c, spanning y0..y1
            for c in range(x0 + min_room, x1 - min_room + 1):
                if grid[y0 - 1, c] == 1 and grid[y1 + 1, c] == 1:
                    cand[n] = c
                    n += 1
        else:  # wall along a row y = r, spanning x0..x1
            for r in range(y0 + min_room, y1 - min_room + 1):
                if grid[r, x0 - 1] == 1 and grid[r, x1 + 1] == 1:
                    cand[n] = r
                    n += 1
        if n == 0:
            continue
        line = cand[randint(states, w, n)]
        if vertical:
            door = y0 + randint(states, w, height)
            for y in range(y0, y1 + 1):
                grid[y, line] = 1
            grid[door, line] = 0
            stack[top] = (x0, line - 1, y0, y1)
            stack[top + 1] = (line + 1, x1, y0, y1)
        else:
            door = x0 + randint(states, w, width)
            for x in range(x0, x1 + 1):
                grid[line, x] = 1
            grid[line, door] = 0
            stack[top] = (x0, x1, y0, line - 1)
            stack[top + 1] = (x0, x1, line + 1, y1)
        top += 2


@kernel
def clearance(grid: np.ndarray, x: float, y: float) -> float:
    """Distance from point (x, y) to the nearest wall cell around it (capped at 1.5 m)."""
    size = grid.shape[0]
    cx, cy = int(math.floor(x)), int(math.floor(y))
    best = 1.5
    for gy in range(max(cy - 1, 0), min(cy + 2, size)):
        for gx in range(max(cx - 1, 0), min(cx + 2, size)):
            if grid[gy, gx] == 1:
                dx = max(gx - x, 0.0, x - (gx + 1.0))
                dy = max(gy - y, 0.0, y - (gy + 1.0))
                d = math.sqrt(dx * dx + dy * dy)
                if d < best:
                    best = d
    return best


@kernel
def move_agent(grid: np.ndarray, x: float, y: float, dx: float, dy: float, radius: float):
    """Move a disc of `radius` by (dx, dy), sliding along walls.

    Returns the new (x, y) and whether the full move was blocked by a wall.
    """
    nx, ny = x + dx, y + dy
    if clearance(grid, nx, ny) >= radius:
        return nx, ny, False
    # slide: keep whichever axis of the move is free, the longer one first
    if abs(dx) >= abs(dy):
        if clearance(grid, x + dx, y) >= radius:
            return x + dx, y, True
        if clearance(grid, x, y + dy) >= radius:
            return x, y + dy, True
    else:
        if clearance(grid, x, y + dy) >= radius:
            return x, y + dy, True
        if clearance(grid, x + dx, y) >= radius:
            return x + dx, y, True
    return x, y, True


@kernel
def free_subcells(grid: np.ndarray, radius: float, out: np.ndarray) -> None:
    """out[j, i] = 1 where the agent's centre fits at sub-cell (i, j)'s centre."""
    n = out.shape[0]
    for j in range(n):
        for i in range(n):
            x = (i + 0.5) / FINE
            y = (j + 0.5) / FINE
            out[j, i] = 1 if clearance(grid, x, y) >= radius else 0


@kernel
def _heap_push(heap_d: np.ndarray, heap_i: np.ndarray, size: int, d: float, node: int) -> int:
    """Push (d, node) on the binary min-heap held in the first `size` slots; return the new size."""
    k = size
    heap_d[k] = d
    heap_i[k] = node
    while k > 0:
        p = (k - 1) // 2
        if heap_d[p] <= heap_d[k]:
            break
        heap_d[p], heap_d[k] = heap_d[k], heap_d[p]
        heap_i[p], heap_i[k] = heap_i[k], heap_i[p]
        k = p
    return size + 1


@kernel
def distance_field(free: np.ndarray, gx: float, gy: float, dist: np.ndarray) -> None:
    """Geodesic metres from every free sub-cell to the point (gx, gy).

    Dijkstra over 8-connected free sub-cells (no corner cutting), with a
    binary heap in flat arrays.
    """
    n = free.shape[0]
    dist[:, :] = UNREACHABLE
    step = 1.0 / FINE
    diag = step * math.sqrt(2.0)
    cap = 8 * n * n + 16
    heap_d = np.empty(cap, np.float32)
    heap_i = np.empty(cap, np.int64)
    size = 0
    # seed: the free sub-cells near the goal, at their straight-line distance
    si, sj = int(gx * FINE), int(gy * FINE)
    for j in range(max(sj - 2, 0), min(sj + 3, n)):
        for i in range(max(si - 2, 0), min(si + 3, n)):
            if free[j, i] == 1:
                d = math.hypot((i + 0.5) * step - gx, (j + 0.5) * step - gy)
                if d < dist[j, i]:
                    dist[j, i] = d
                    size = _heap_push(heap_d, heap_i, size, d, j * n + i)
    while size > 0:
        d = heap_d[0]
        node = heap_i[0]
        size -= 1
        heap_d[0] = heap_d[size]
        heap_i[0] = heap_i[size]
        k = 0
        while True:
            left = 2 * k + 1
            if left >= size:
                break
            c = left
            if left + 1 < size and heap_d[left + 1] < heap_d[left]:
                c = left + 1
            if heap_d[k] <= heap_d[c]:
                break
            heap_d[k], heap_d[c] = heap_d[c], heap_d[k]
            heap_i[k], heap_i[c] = heap_i[c], heap_i[k]
            k = c
        j, i = node // n, node % n
        if d > dist[j, i]:
            continue
        for dj in range(-1, 2):
            for di in range(-1, 2):
                if di == 0 and dj == 0:
                    continue
                jj, ii = j + dj, i + di
                if jj < 0 or ii < 0 or jj >= n or ii >= n or free[jj, ii] == 0:
                    continue
                if di != 0 and dj != 0 and (free[j, ii] == 0 or free[jj, i] == 0):
                    continue
                nd = d + (diag if di != 0 and dj != 0 else step)
                if nd < dist[jj, ii] and size < cap:
                    dist[jj, ii] = nd
                    size = _heap_push(heap_d, heap_i, size, nd, jj * n + ii)


@kernel
def geodesic_at(dist: np.ndarray, x: float, y: float) -> float:
    """Geodesic metres from (x, y) to the field's goal, through the nearest sub-cells."""
    n = dist.shape[0]
    ci, cj = int(x * FINE), int(y * FINE)
    best = float(UNREACHABLE)
    for j in range(max(cj - 1, 0), min(cj + 2, n)):
        for i in range(max(ci - 1, 0), min(ci + 2, n)):
            d = dist[j, i]
            if d < UNREACHABLE:
                v = d + math.hypot((i + 0.5) / FINE - x, (j + 0.5) / FINE - y)
                if v < best:
                    best = v
    return best


@kernel
def walls_between(grid: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> int:
    """Number of wall cells the straight segment (x0, y0) -> (x1, y1) crosses (grid DDA)."""
    cx, cy = int(math.floor(x0)), int(math.floor(y0))
    ex, ey = int(math.floor(x1)), int(math.floor(y1))
    dx, dy = x1 - x0, y1 - y0
    step_x = 1 if dx > 0 else -1
    step_y = 1 if dy > 0 else -1
    t_dx = abs(1.0 / dx) if dx != 0.0 else 1e30
    t_dy = abs(1.0 / dy) if dy != 0.0 else 1e30
    t_x = ((cx + 1 - x0) if dx > 0 else (x0 - cx)) * t_dx
    t_y = ((cy + 1 - y0) if dy > 0 else (y0 - cy)) * t_dy
    count = 0
    for _ in range(4 * grid.shape[0]):
        if cx == ex and cy == ey:
            break
        if t_x < t_y:
            t_x += t_dx
            cx += step_x
        else:
            t_y += t_dy
            cy += step_y
        if cx == ex and cy == ey:
            break
        if grid[cy, cx] == 1:
            count += 1
    return count


@kernel
def random_free_point(
    grid: np.ndarray, free: np.ndarray, states: np.ndarray, w: int, jitter: float
) -> tuple[float, float]:
    """A random cell centre (± jitter) where the agent fits."""
    size = grid.shape[0]
    for _ in range(1000):
        cx = 1 + randint(states, w, size - 2)
        cy = 1 + randint(states, w, size - 2)
        if grid[cy, cx] == 1:
            continue
        x = cx + 0.5 + (uniform(states, w) * 2.0 - 1.0) * jitter
        y = cy + 0.5 + (uniform(states, w) * 2.0 - 1.0) * jitter
        if free[int(y * FINE), int(x * FINE)] == 1:
            return x, y
    return 1.5, 1.5
