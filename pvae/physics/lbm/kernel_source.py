"""Straight-line source of the two in-place (AA) stream-collide steps, for numba and for C.

The sparse CPU kernels keep ONE population array ``f`` of shape ``(Q, N)`` (fluid nodes in
C order of the image) and alternate two steps, the AA pattern (Bailey et al., "Accelerating
lattice Boltzmann fluid flow simulations using graphics processors", ICPP 2009):

* step A (even steps): node n reads its own 19 slots ``f[q, n]`` as incoming populations,
  collides, and writes post-collision population q into slot ``OPPOSITE[q]`` of the same
  node. No neighbour is touched and the reads and writes are contiguous in n.
* step B (odd steps): node n reads incoming population q from ``f.ravel()[table[q - 1, n]]``
  (:func:`~pvae.physics.lbm.streaming.aa_sources`: slot ``OPPOSITE[q]`` of its upstream
  neighbour, where that neighbour's step A left it, or its own slot q when the neighbour is
  solid: halfway bounce-back), collides, and writes post-collision population q to where it
  read population ``OPPOSITE[q]``: slot q of its downstream neighbour, or its own slot
  ``OPPOSITE[q]`` (bounce-back), where the next step A reads it.

Each slot is read and written by exactly one node in each step, so both steps update ``f``
in place and nodes may run in any order, in parallel or in SIMD lanes. Against the two
arrays of pull streaming, a node update moves 152 B (step A) or 224 B (step B, with the
table) instead of about 300 B in float32 (no second array, no write-allocate of it, the
72 B table every other step), and step A vectorises without gathers. Step B can also run
step A's work: with node n's own slots as its indices (:class:`StepSource`), which is how
the numba kernel runs both steps through one loop body.

The collision is not written here: :func:`step_bodies` traces
:func:`~pvae.physics.lbm.collision.collide`, the function the torch path runs, with symbols
that record each arithmetic operation, and emits it in the syntax of numba (Python) or C.
"""

from dataclasses import dataclass

from pvae.physics.lbm.collision import collide
from pvae.physics.lbm.lattice import OPPOSITE, Q


class _Symbol:
    """A traced scalar: each operation appends ``(name, left, op, right)`` to the trace."""

    __slots__ = ("name", "trace")

    def __init__(self, name: str, trace: list[tuple]) -> None:
        self.name = name
        self.trace = trace

    def _emit(self, left: object, op: str, right: object) -> "_Symbol":
        name = f"t{len(self.trace)}"
        self.trace.append((name, left, op, right))
        return _Symbol(name, self.trace)

    def __add__(self, other: object) -> "_Symbol":
        return self._emit(self, "+", other)

    def __radd__(self, other: object) -> "_Symbol":
        return self._emit(other, "+", self)

    def __sub__(self, other: object) -> "_Symbol":
        return self._emit(self, "-", other)

    def __rsub__(self, other: object) -> "_Symbol":
        return self._emit(other, "-", self)

    def __mul__(self, other: object) -> "_Symbol":
        return self._emit(self, "*", other)

    def __rmul__(self, other: object) -> "_Symbol":
        return self._emit(other, "*", self)

    def __neg__(self) -> "_Symbol":
        return self._emit(0.0, "-", self)


class Dialect:
    """How statements are spelled in one target language.

    Parameters
    ----------
    language : {"python", "c"}
        numba-compiled Python, or C99.
    real : str
        C type of the populations and of the arithmetic (``"float"`` or ``"double"``);
        ignored for Python, where numba types the arithmetic.
    """

    def __init__(self, language: str, real: str = "double") -> None:
        self.c = language == "c"
        self.real = real

    def operand(self, value: object) -> str:
        """A traced symbol's name or a literal (``f``-suffixed for C floats)."""
        if isinstance(value, _Symbol):
            return value.name
        literal = repr(float(value))
        return literal + "f" if self.c and self.real == "float" else literal

    def define(self, name: str, expression: str, kind: str | None = None) -> str:
        """``name = expression`` as a new local of C type ``kind`` (default: ``real``)."""
        if self.c:
            return f"const {kind or self.real} {name} = {expression};"
        return f"{name} = {expression}"

    def store(self, target: str, expression: str) -> str:
        """Assignment to an array element."""
        return f"{target} = {expression};" if self.c else f"{target} = {expression}"


@dataclass(frozen=True)
class StepSource:
    """Statements of the two steps for node ``n``, unindented.

    Attributes
    ----------
    step_a : list of str
        Step A on node n's own slots, addressed as rows of ``f`` (contiguous in n, what a
        vectorising compiler wants).
    own_slots, table_slots : list of str
        Define ``i1 .. i18``, the flat indices where population q is read (and population
        ``OPPOSITE[q]`` written): node n's own slots q (step A) or the table's entries
        (step B).
    indexed : list of str
        Read population q at ``i_q``, collide, write post-collision q at
        ``i_{OPPOSITE[q]}``: step B after ``table_slots``, step A after ``own_slots``. One
        body for both steps runs the same floating-point code in each.
    """

    step_a: list[str]
    own_slots: list[str]
    table_slots: list[str]
    indexed: list[str]


def step_bodies(dialect: Dialect, table_type: str = "int32_t") -> StepSource:
    """Source of steps A and B for node ``n`` (:class:`StepSource`).

    The statements use these names, which the enclosing function must define: ``f`` (the
    population array of shape (Q, N), in C a pointer), ``nn`` (N, the row stride), ``flat``
    (Python: ``f.ravel()``), ``table`` (the B-step table of shape (Q - 1, N), in C a pointer
    with row stride ``nn``), ``force0..force2``, ``omega_plus`` and ``omega_minus``.

    Parameters
    ----------
    dialect : Dialect
        Target language.
    table_type : str
        C type of a table entry (``"int32_t"`` or ``"int64_t"``); ignored for Python.

    Returns
    -------
    StepSource
    """
    trace: list[tuple] = []
    fin = [_Symbol(f"f{q}", trace) for q in range(Q)]
    force = [_Symbol(f"force{axis}", trace) for axis in range(3)]
    out = collide(fin, force, _Symbol("omega_plus", trace), _Symbol("omega_minus", trace))
    collision = [
        dialect.define(name, f"{dialect.operand(left)} {op} {dialect.operand(right)}")
        for name, left, op, right in trace
    ]
    if dialect.c:
        slot = [f"f[{q}L * nn + n]" for q in range(Q)]  # slot q of node n
        moved = ["f[n]"] + [f"f[i{q}]" for q in range(1, Q)]
        table = [f"table[{q - 1}L * nn + n]" for q in range(1, Q)]
        own = [f"{q}L * nn + n" for q in range(1, Q)]
    else:
        slot = [f"f[{q}, n]" for q in range(Q)]
        moved = ["flat[n]"] + [f"flat[i{q}]" for q in range(1, Q)]
        table = [f"table[{q - 1}, n]" for q in range(1, Q)]
        own = [f"{q} * nn + n" for q in range(1, Q)]
    result = [dialect.operand(value) for value in out]
    step_a = (
        [dialect.define(f"f{q}", slot[q]) for q in range(Q)]
        + collision
        + [dialect.store(slot[OPPOSITE[q]], result[q]) for q in range(Q)]
    )
    indexed = (
        [dialect.define(f"f{q}", moved[q]) for q in range(Q)]
        + collision
        + [dialect.store(moved[OPPOSITE[q]], result[q]) for q in range(Q)]
    )
    return StepSource(
        step_a=step_a,
        own_slots=[dialect.define(f"i{q}", own[q - 1], table_type) for q in range(1, Q)],
        table_slots=[dialect.define(f"i{q}", table[q - 1], table_type) for q in range(1, Q)],
        indexed=indexed,
    )
