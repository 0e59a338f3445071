"""The tool environments: Tool-Query (academia, movie, weather) and Tool-Operation (todo, sheet).

* :mod:`~agentrm_gym.envs.tools.schema` - tool schemas and argument checks;
  :mod:`~agentrm_gym.envs.tools.calls` - action parsing and canonical call text;
  :mod:`~agentrm_gym.envs.tools.answers` - answer matching; :mod:`~agentrm_gym.envs.tools.toolset` -
  tool sets over SQLite and their dispatch; :mod:`~agentrm_gym.envs.tools.base` - the shared
  :class:`~agentrm_gym.envs.tools.base.ToolEnv` base class;
* :mod:`~agentrm_gym.envs.tools.academia`, :mod:`~agentrm_gym.envs.tools.movie`,
  :mod:`~agentrm_gym.envs.tools.weather` - generated read-only databases, their tools and question
  generators; :mod:`~agentrm_gym.envs.tools.query` - :class:`ToolQueryEnv`;
* :mod:`~agentrm_gym.envs.tools.todo`, :mod:`~agentrm_gym.envs.tools.sheet` - generated per-task stores,
  their tools and goal generators; :mod:`~agentrm_gym.envs.tools.store` - state diffs;
  :mod:`~agentrm_gym.envs.tools.operation` - :class:`ToolOperationEnv`.

The env modules are imported lazily (``agentrm_gym.envs.tools.query:ToolQueryEnv``) so that importing
this package stays cheap.
"""
