// prepare() runs before any browser starts; returning skip ends the run at once
// with run_complete { skipped: true, reason }. A skipped run is recorded, never authoritative.
import type { QuarryContext } from 'quarry/sdk';

interface Job {
  url: string;
  enabled?: boolean;
}

export function prepare(job: Job) {
  if (job.enabled === false) return { action: 'skip' as const, reason: 'source disabled in the job' };
  return { action: 'continue' as const };
}

export default async function run(ctx: QuarryContext<Job>): Promise<void> {
  await ctx.page.goto(ctx.job.url, { waitUntil: 'domcontentloaded' });
  await ctx.emit.item({ item_type: 'heartbeat', data: { title: await ctx.page.title() } });
}
