/** Forked bench children driven over IPC: each command is answered by one event of a known type, or 'error'. */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';

type Typed = { type: string };

export class Child<Cmd extends Typed, Ev extends Typed> {
  private waiters: { type: string; resolve: (ev: Ev) => void; reject: (err: Error) => void }[] = [];
  /** Events that arrived before anyone waited for them (a child's 'ready' can beat the parent's next()). */
  private unclaimed: Ev[] = [];
  private exited = false;
  readonly proc: ChildProcess;

  /** `script` is a file next to this one in dist/bench (e.g. 'server-host.js'); `execPath` the Node to run it. */
  constructor(
    readonly name: string,
    script: string,
    execArgv: string[] = [],
    execPath = process.execPath,
  ) {
    this.proc = fork(path.join(__dirname, script), [], { execArgv, execPath, stdio: 'inherit' });
    this.proc.on('message', (ev: Ev) => {
      if (ev.type === 'error') {
        const err = new Error(`${name}: ${(ev as unknown as { message: string }).message}`);
        const waiter = this.waiters.shift();
        if (waiter) waiter.reject(err);
        else process.stderr.write(`${err.message}\n`);
        return;
      }
      const i = this.waiters.findIndex((w) => w.type === ev.type);
      if (i < 0) {
        this.unclaimed.push(ev);
        return;
      }
      const [waiter] = this.waiters.splice(i, 1);
      waiter?.resolve(ev);
    });
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`${name} exited (${code ?? signal})`));
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  next<T extends Ev['type']>(type: T): Promise<Extract<Ev, { type: T }>> {
    const early = this.unclaimed.findIndex((ev) => ev.type === type);
    if (early >= 0) return Promise.resolve(this.unclaimed.splice(early, 1)[0] as Extract<Ev, { type: T }>);
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    return new Promise((resolve, reject) => {
      this.waiters.push({ type, resolve: resolve as (ev: Ev) => void, reject });
    });
  }

  request<T extends Ev['type']>(cmd: Cmd, reply: T): Promise<Extract<Ev, { type: T }>> {
    const answer = this.next(reply);
    this.proc.send(cmd);
    return answer;
  }

  /** Asks the child to stop, then kills it if it has not exited within 5 s. */
  async stop(cmd: Cmd, reply: Ev['type']): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    await Promise.race([this.request(cmd, reply).catch(() => undefined), delay(5000)]);
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
