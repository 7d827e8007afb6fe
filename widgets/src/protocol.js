// The contract with the kernel, in one place: the synced traits the panel reads, the messages the
// kernel sends and the commands the panel sends. widgets/PROTOCOL.md describes each field; the
// Python side names the same things in hpo_nb/frontends/panel_protocol.py, and
// tests/test_widget.py checks that both sides list the same traits and commands.

/** Synced traits of the Panel widget and their kind: "dict", "list" or "text" (a string). */
export const TRAITS = Object.freeze({
  study: "dict",
  progress: "dict",
  config: "dict",
  options: "dict",
  space: "dict",
  draft_error: "text",
  config_error: "text",
  can: "dict",
  status: "text",
  top: "list",
  importance: "dict",
  exports: "list",
});

/** Commands the panel sends, as {cmd: NAME, ...fields}; each is a Console._cmd_NAME handler. */
export const COMMANDS = Object.freeze({
  SYNC: "sync",
  DRAFT: "draft",
  APPLY: "apply",
  CONFIG: "config",
  START: "start",
  STOP: "stop",
  STOP_NOW: "stop_now",
  RESUME: "resume",
  EXPORT: "export",
});

/** The `kind` of the custom messages the kernel sends. */
export const MESSAGES = Object.freeze({
  TRIALS: "trials",
});

/** Holding more rows than this, the panel sends `sync` and the kernel answers with a sample. */
export const MAX_ROWS = 6000;

// ---------------------------------------------------------------- kernel -> panel

/**
 * One finished trial (hpo_nb.engine.rows.trial_row).
 * @typedef {object} TrialRow
 * @property {number} n trial number
 * @property {"complete" | "pruned" | "fail"} s state
 * @property {(number | null)[] | null} v objective values (null where not finite)
 * @property {Object<string, *>} p params
 * @property {string | null} w worker that ran it
 * @property {string | null} g GPU it ran on
 * @property {number | null} t0 start, epoch seconds
 * @property {number | null} t1 end, epoch seconds
 * @property {[number, number | null][]} iv intermediate values [step, value], at most 64
 * @property {number | null} ps step it was pruned at
 * @property {string} r why it failed ("" otherwise)
 */

/**
 * Finished trials: all the panel should hold (`reset`, the answer to `sync`) or new ones.
 * @typedef {object} TrialsMessage
 * @property {"trials"} kind
 * @property {boolean} reset
 * @property {TrialRow[]} rows
 * @property {number} total finished trials the kernel holds
 */

/**
 * @typedef {object} Study
 * @property {string} name
 * @property {string} storage storage URL, password hidden
 * @property {("minimize" | "maximize")[]} directions
 * @property {string | null} objective objective name(s), comma separated
 * @property {string | null} parent the study this one was branched from
 */

/**
 * hpo_nb.engine.progress.Progress.to_json() plus `per_minute`.
 * @typedef {object} Progress
 * @property {string} study
 * @property {number} target
 * @property {string[]} directions
 * @property {string} state idle, starting, running, stopping, stopped, completed, converged, failed
 * @property {string} reason
 * @property {string} note
 * @property {number} finished_before
 * @property {number} finished
 * @property {number} complete
 * @property {number} pruned
 * @property {number} failed
 * @property {number} running
 * @property {number | null} best_value
 * @property {Object<string, *>} best_params
 * @property {number | null} best_number
 * @property {string} last_failure
 * @property {string} sampler
 * @property {number} retried
 * @property {string[]} events the latest ones, "HH:MM:SS text"
 * @property {number} events_total
 * @property {Resource[]} resources
 * @property {number} started_at
 * @property {number | null} ended_at
 * @property {string} summary
 * @property {number | null} per_minute
 */

/**
 * One worker's latest figures (hpo_nb.execution.monitor.worker_stats).
 * @typedef {object} Resource
 * @property {string} worker
 * @property {string} address
 * @property {number | null} trial
 * @property {number} cpu percent
 * @property {number} rss bytes
 * @property {number} [gpu_utilization] percent
 * @property {number} [gpu_memory_used] bytes
 * @property {number} [gpu_memory_total] bytes
 */

/**
 * The run settings the next start uses; a `config` command changes some of them. Besides the
 * pickers' four keys, one per `options.fields` entry.
 * @typedef {object} Config
 * @property {string} sampler
 * @property {Object<string, *>} sampler_options
 * @property {string} pruner
 * @property {Object<string, *>} pruner_options
 * @property {number | null} n_trials
 * @property {number | null} concurrency
 * @property {number | null} trial_timeout
 * @property {number} retries
 * @property {number} stop_after_failures
 * @property {number | null} timeout
 * @property {number | null} max_time
 * @property {number | null} patience
 * @property {number} min_delta
 * @property {number | null} seed
 */

/**
 * One editable run setting, in display order.
 * @typedef {object} ConfigField
 * @property {string} name the Config key
 * @property {string} label
 * @property {"int" | "float" | "text"} kind
 * @property {number | null} min
 * @property {boolean} nullable whether empty (null) is allowed
 * @property {string} help
 */

/**
 * What the setup view offers.
 * @typedef {object} Options
 * @property {string[]} samplers
 * @property {string[]} pruners
 * @property {Object<string, Object<string, *>>} sampler_options each sampler's main options and defaults
 * @property {Object<string, Object<string, *>>} pruner_options
 * @property {ConfigField[]} fields
 */

/**
 * @typedef {object} ParamSpec
 * @property {"float" | "int" | "categorical"} type
 * @property {number} [low]
 * @property {number} [high]
 * @property {number | null} [step]
 * @property {boolean} [log]
 * @property {*[]} [choices]
 * @property {Object<string, *[]>} [when]
 */

/**
 * @typedef {object} Space
 * @property {Object<string, ParamSpec>} params
 * @property {"declared" | "discovered" | "none"} source
 */

/**
 * @typedef {object} Can
 * @property {boolean} start
 * @property {boolean} resume
 * @property {boolean} stop
 * @property {boolean} stop_now
 * @property {boolean} apply
 * @property {boolean} export
 */

/**
 * @typedef {object} Importance
 * @property {[string, number][]} params most important first
 * @property {number} at finished trials it was computed at
 * @property {string} evaluator
 */

// ---------------------------------------------------------------- panel -> kernel

/**
 * @typedef {{cmd: "sync"}} SyncCommand
 * @typedef {{cmd: "draft", space: {params: Object<string, ParamSpec>}}} DraftCommand
 * @typedef {{cmd: "apply", space: {params: Object<string, ParamSpec>}}} ApplyCommand
 * @typedef {{cmd: "config", config: Partial<Config>}} ConfigCommand
 * @typedef {{cmd: "start" | "stop" | "stop_now" | "resume" | "export"}} ButtonCommand
 * @typedef {SyncCommand | DraftCommand | ApplyCommand | ConfigCommand | ButtonCommand} Command
 */
