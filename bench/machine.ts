/**
 * What the cluster benchmark records about where it ran: the machine, the Deno version, the
 * commit, and the CPU time of each process (client and nodes) from Linux's `/proc`, so that a
 * figure can be read as "operations per second" and as "CPU microseconds per operation".
 */

/** The machine a run happened on. */
export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly os: string;
  readonly deno: string;
  readonly v8: string;
  readonly commit: string;
  readonly isDirty: boolean;
  /** Load averages (1, 5, 15 minutes) when the run started: other work on the machine. */
  readonly loadAverage: readonly number[];
}

/** Linux reports process times in clock ticks of 1/100 s on every common platform. */
const CLOCK_TICKS_PER_SECOND = 100;

/** Describes this machine and the project's commit. */
export async function machineInfo(root: string): Promise<MachineInfo> {
  const cpuinfo = await readOptional("/proc/cpuinfo");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  return {
    cores: navigator.hardwareConcurrency,
    cpuModel: model.trim(),
    memoryGiB: Math.round(Deno.systemMemoryInfo().total / 1024 ** 3),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    commit: (await git(root, ["rev-parse", "--short=12", "HEAD"])).trim(),
    isDirty: (await git(root, ["status", "--porcelain", "--untracked-files=no"])).trim() !== "",
    loadAverage: Deno.loadavg().map((value) => Math.round(value * 100) / 100),
  };
}

/** CPU time (user + system) a process has used so far, in ms; null when unknown. */
export function cpuTimeMs(pid: number | "self" | null): number | null {
  if (pid === null) return null;
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks * 1000 / CLOCK_TICKS_PER_SECOND : null;
}

async function git(root: string, args: string[]): Promise<string> {
  const output = await new Deno.Command("git", { args, cwd: root, stderr: "null" }).output();
  return output.success ? new TextDecoder().decode(output.stdout) : "unknown";
}

async function readOptional(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}
