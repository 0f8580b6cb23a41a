"""One dimension of a search space: a hyperparameter's map between the unit interval and values.

Pure Python (no TensorFlow). Scales: linear, log, reverse_log (dense near `max`, for values such as
Adam's beta), discrete (ordered numbers) and categorical; integers own equal-width bins. Every
dimension maps a coordinate u in [0, 1) to a value. The log, linear and discrete maps use the same
floating-point expressions as the playbook's reference `halton.py`, so the `halton_compat` sampler
reproduces its values bit for bit. A conditional dimension hangs under a categorical parent and
has the id `f"{parent_value}/{name}"` unless given one.

tfplaybook.search.space parses and validates dimensions from a study's spec and groups them into a
SearchSpace.
"""

import math


class Dimension:
    """One varied hyperparameter: a coordinate of the unit cube and its map to values."""

    def __init__(
        self,
        name,
        role,
        scale,
        low=None,
        high=None,
        values=None,
        is_int=False,
        parent=None,
        parent_value=None,
        dim_id=None,
    ):
        self.name = name
        self.role = role
        self.scale = scale
        self.min = low
        self.max = high
        self.values = tuple(values) if values is not None else None
        self.is_int = is_int
        self.parent = parent
        self.parent_value = parent_value
        # A conditional dimension's id defaults to `parent_value/name` (see the module docstring).
        self.id = dim_id or (name if parent is None else f"{parent_value}/{name}")

    @property
    def is_choice(self):
        return self.scale in ("discrete", "categorical")

    def from_unit(self, u):
        """Maps u in [0, 1) to a value (u outside is clipped)."""
        u = min(max(float(u), 0.0), math.nextafter(1.0, 0.0))
        if self.is_choice:
            return self.values[min(int(math.floor(u * len(self.values))), len(self.values) - 1)]
        low, high = self.min, self.max
        if self.is_int:
            # Each integer owns an equal-width (linear) or equal-log-width (log) bin.
            if self.scale == "log":
                value = math.floor(low * math.exp(u * math.log((high + 1) / low)))
            else:
                value = math.floor(u * (high + 1 - low) + low)
            return int(min(max(value, low), high))
        if self.scale == "log":
            return low * math.exp(u * math.log(high / low))
        if self.scale == "reverse_log":
            return (low + high) - math.exp(math.log(high) - u * (math.log(high) - math.log(low)))
        return u * (high - low) + low

    def to_unit(self, value):
        """Maps a value to its coordinate; choices and integers map to the centre of their bin.

        Numbers outside [min, max] map outside [0, 1) (a warm-start trial from a wider space).

        Raises:
          ValueError: for a choice not in `values` or a value the scale cannot represent.
        """
        if self.is_choice:
            for index, candidate in enumerate(self.values):
                if same_choice(candidate, value):
                    return (index + 0.5) / len(self.values)
            raise ValueError(f"{self.id}={value!r} is not one of {list(self.values)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self.id}={value!r} is not a number")
        low, high = self.min, self.max
        if self.scale in ("log", "reverse_log") and (
            value <= 0 if self.scale == "log" else value >= low + high
        ):
            raise ValueError(f"{self.id}={value!r} cannot be placed on a {self.scale} scale")
        if self.is_int:
            if self.scale == "log":
                centre = 0.5 * (math.log(value) + math.log(value + 1))
                return (centre - math.log(low)) / math.log((high + 1) / low)
            return (value + 0.5 - low) / (high + 1 - low)
        if self.scale == "log":
            return math.log(value / low) / math.log(high / low)
        if self.scale == "reverse_log":
            return (math.log(high) - math.log(low + high - value)) / (
                math.log(high) - math.log(low)
            )
        return (value - low) / (high - low)

    def spec(self):
        """The canonical dict form of this dimension (parses back to an equal dimension)."""
        spec = {"name": self.name, "role": self.role, "scale": self.scale}
        if self.is_choice:
            spec["values"] = list(self.values)
        else:
            spec.update(min=self.min, max=self.max, type="int" if self.is_int else "float")
        if self.parent is not None:
            spec.update(parent=self.parent, parent_value=self.parent_value)
            if self.id != f"{self.parent_value}/{self.name}":
                spec["id"] = self.id
        return spec


def same_choice(a, b):
    """Whether two choice values are the same value."""
    # True == 1 in Python; a categorical [True, 1] must keep them apart.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b
