r"""A discrete Bayesian network: named variables with named states, parents and CPTs.

A network over variables :math:`X_1, \dots, X_n` with parents :math:`\mathrm{pa}(i)` defines

.. math::

    p(x_1, \dots, x_n) = \prod_i p(x_i \mid x_{\mathrm{pa}(i)}),

each factor a conditional probability table (CPT).  Here a CPT is an array of shape
``(*parent_cardinalities, cardinality)`` in the order the parents are listed: indexing it
with the parents' state indices gives the distribution of the child, whose entries sum to one.

A :class:`BayesNet` is immutable and validated when it is built: the parent graph must be
acyclic, every CPT must have the shape its parents imply, contain no negative or non-finite
entries and have rows summing to one.  Each failure raises a :class:`~mcgen.bayesnet.BayesNetError`
subclass that names the variable.  Variables are kept in a topological order (parents before
children; ties broken by the order given), which is the order ancestral sampling visits them.

Example
-------
>>> bn = BayesNet.from_dict({
...     "cloudy": {"states": ["T", "F"], "cpt": [0.5, 0.5]},
...     "rain": {"states": ["T", "F"], "parents": ["cloudy"], "cpt": [[0.8, 0.2], [0.2, 0.8]]},
... })
>>> bn.query(["cloudy"], evidence={"rain": "T"})["cloudy"]["T"]   # doctest: +ELLIPSIS
0.8...
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mcgen.bayesnet._errors import BayesNetError, CycleError, EvidenceError
from mcgen.bayesnet._validate import ROW_SUM_ATOL, check_cpt, topological_order

__all__ = ["BayesNet", "Variable"]


@dataclasses.dataclass(frozen=True)
class Variable:
    """One node of a network.

    Attributes
    ----------
    name
        Unique variable name.
    states
        Names of its states, in index order.
    parents
        Names of its parents, in the order of the CPT's leading axes.
    cpt
        Array-like of shape ``(*[len(states of p) for p in parents], len(states))``.
    """

    name: str
    states: Sequence[str]
    parents: Sequence[str] = ()
    cpt: Any = None


class BayesNet:
    """An immutable, validated discrete Bayesian network.

    Parameters
    ----------
    variables
        The :class:`Variable` nodes, in any order.
    name
        Network name (written to BIF).
    atol
        Tolerance on CPT row sums.

    Attributes
    ----------
    name
        Network name.
    variables
        Variable names in topological order.
    states, parents, children, cpts
        Dicts keyed by variable name: state names, parent names, child names (topological
        order) and the CPT arrays (read-only, shape ``(*parent_cards, card)``).
    """

    def __init__(self, variables: Iterable[Variable], *, name: str = "bayesnet", atol: float = ROW_SUM_ATOL):
        given = list(variables)
        if not given:
            raise BayesNetError("a network needs at least one variable")
        specs: dict[str, Variable] = {}
        for var in given:
            if not isinstance(var, Variable):
                raise TypeError(f"expected mcgen.bayesnet.Variable, got {type(var).__name__}")
            if not isinstance(var.name, str) or not var.name:
                raise BayesNetError(f"variable names must be non-empty strings, got {var.name!r}")
            if var.name in specs:
                raise BayesNetError(f"variable {var.name!r} is defined twice", var.name)
            states = tuple(var.states) if not isinstance(var.states, str) else None
            if not states or not all(isinstance(s, str) and s for s in states):
                raise BayesNetError(
                    f"variable {var.name!r} needs a sequence of non-empty state names, got {var.states!r}", var.name
                )
            if len(set(states)) != len(states):
                raise BayesNetError(f"variable {var.name!r} has duplicate state names {states}", var.name)
            parents = (var.parents,) if isinstance(var.parents, str) else tuple(var.parents)
            if len(set(parents)) != len(parents):
                raise BayesNetError(f"variable {var.name!r} lists a parent twice: {parents}", var.name)
            specs[var.name] = dataclasses.replace(var, states=states, parents=parents)
        for var in specs.values():
            for p in var.parents:
                if p not in specs:
                    raise BayesNetError(f"variable {var.name!r} has unknown parent {p!r}", var.name)
                if p == var.name:
                    raise CycleError(f"variable {var.name!r} is its own parent", [p, p])
        order = topological_order(list(specs), {v: specs[v].parents for v in specs})

        self.name = str(name)
        self.variables: tuple[str, ...] = tuple(order)
        self.states = {v: specs[v].states for v in order}
        self.parents = {v: specs[v].parents for v in order}
        self.children = {v: tuple(c for c in order if v in specs[c].parents) for v in order}
        self.cpts = {}
        for v in order:
            shape = tuple(len(self.states[p]) for p in self.parents[v]) + (len(self.states[v]),)
            self.cpts[v] = check_cpt(specs[v], shape, atol)
        self._cache: dict[Any, Any] = {}  # derived data (tables, kernels, subnetworks); never the answer

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping[str, Any]], *, name: str = "bayesnet") -> "BayesNet":
        """Build from ``{name: {"states": [...], "parents": [...], "cpt": array}}``."""
        variables = []
        for var, d in spec.items():
            unknown = set(d) - {"states", "parents", "cpt"}
            if unknown:
                raise BayesNetError(f"variable {var!r} has unknown keys {sorted(unknown)}", var)
            if "states" not in d or "cpt" not in d:
                raise BayesNetError(f"variable {var!r} needs 'states' and 'cpt'", var)
            variables.append(Variable(var, d["states"], d.get("parents", ()), d["cpt"]))
        return cls(variables, name=name)

    def variable(self, name: str) -> Variable:
        """The :class:`Variable` called ``name``."""
        self._check_name(name)
        return Variable(name, self.states[name], self.parents[name], self.cpts[name])

    def cardinality(self, name: str) -> int:
        """Number of states of ``name``."""
        self._check_name(name)
        return len(self.states[name])

    def __len__(self) -> int:
        return len(self.variables)

    def __iter__(self):
        return iter(self.variables)

    def __contains__(self, name: object) -> bool:
        return name in self.states

    def __repr__(self) -> str:
        edges = sum(len(p) for p in self.parents.values())
        return f"BayesNet({self.name!r}, {len(self)} variables, {edges} edges)"

    # ------------------------------------------------------------------ graph helpers

    def _check_name(self, name: Any, what: str = "variable") -> None:
        if name not in self.states:
            raise EvidenceError(
                f"unknown {what} {name!r}; the network has {list(self.variables)}",
                name if isinstance(name, str) else None,
            )

    def markov_blanket(self, name: str) -> tuple[str, ...]:
        """Parents, children and the children's other parents of ``name`` (topological order)."""
        self._check_name(name)
        blanket = set(self.parents[name]) | set(self.children[name])
        for c in self.children[name]:
            blanket |= set(self.parents[c])
        blanket.discard(name)
        return tuple(v for v in self.variables if v in blanket)

    def ancestors(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` and all their ancestors, in topological order."""
        stack = list(names)
        for n in stack:
            self._check_name(n)
        seen = set(stack)
        while stack:
            for p in self.parents[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return tuple(v for v in self.variables if v in seen)

    def subnetwork(self, names: Iterable[str]) -> "BayesNet":
        """The network restricted to ``names`` and their ancestors.

        Marginalizing a childless node out of a network leaves the other CPTs unchanged, so
        the ancestral closure of the query and evidence variables gives the same answers as
        the whole network (the "barren node" pruning of exact and sampled inference).
        """
        keep = self.ancestors(names)
        if len(keep) == len(self):
            return self
        key = ("subnetwork", keep)
        if key not in self._cache:
            sub = BayesNet([self.variable(v) for v in keep], name=self.name)
            self._cache[key] = sub
        return self._cache[key]

    # ------------------------------------------------------------------ evidence

    def state_index(self, name: str, state: Any) -> int:
        """Index of ``state`` (a state name or an integer index) of variable ``name``."""
        self._check_name(name)
        states = self.states[name]
        if isinstance(state, str):
            if state not in states:
                raise EvidenceError(f"variable {name!r} has no state {state!r}; its states are {list(states)}", name)
            return states.index(state)
        if isinstance(state, (int, np.integer)) and not isinstance(state, (bool, np.bool_)):
            if not 0 <= int(state) < len(states):
                raise EvidenceError(
                    f"state index {int(state)} is out of range for {name!r}, which has {len(states)} states", name
                )
            return int(state)
        raise EvidenceError(f"the state of {name!r} must be a state name or an integer index, got {state!r}", name)

    def evidence_indices(self, evidence: Mapping[str, Any] | None) -> dict[str, int]:
        """Validate ``evidence`` and map every value to its state index."""
        if evidence is None:
            return {}
        if not isinstance(evidence, Mapping):
            raise EvidenceError(f"evidence must be a dict {{variable: state}}, got {type(evidence).__name__}")
        return {name: self.state_index(name, state) for name, state in evidence.items()}

    # ------------------------------------------------------------------ the rest of the API

    def logdensity_fn(self):
        """``f(position) -> log p(x)``: the joint log-probability of a full assignment.

        ``position`` is a dict ``{name: int array}`` over all variables (arrays broadcast
        together, so a batch of assignments gives a batch of log-probabilities).  The same
        function object is returned on every call, so compiled code that uses it is reused.
        """
        from mcgen.bayesnet._tables import joint_logdensity_fn

        if "logdensity_fn" not in self._cache:
            self._cache["logdensity_fn"] = joint_logdensity_fn(self)
        return self._cache["logdensity_fn"]

    def query(self, variables: str | Sequence[str], evidence: Mapping[str, Any] | None = None, **kwargs):
        """Posterior marginals; see :func:`mcgen.bayesnet.query` for the options."""
        from mcgen.bayesnet.query import query

        return query(self, variables, evidence, **kwargs)

    def sample(self, num_samples: int, *, seed: int = 0, as_names: bool = False) -> dict[str, np.ndarray]:
        """Forward (ancestral) samples: ``{name: int array (num_samples,)}``.

        With ``as_names=True`` the arrays hold state names instead of indices.
        """
        from mcgen.bayesnet.sampling import forward_sample

        draws = forward_sample(self, num_samples, seed=seed)
        if as_names:
            return {v: np.asarray(self.states[v], dtype=object)[x] for v, x in draws.items()}
        return draws

    def to_bif(self) -> str:
        """The network as BIF text (see :func:`mcgen.bayesnet.to_bif`)."""
        from mcgen.bayesnet.bif import to_bif

        return to_bif(self)

    def write_bif(self, path) -> None:
        """Write the network to ``path`` in BIF."""
        from mcgen.bayesnet.bif import write_bif

        write_bif(self, path)
