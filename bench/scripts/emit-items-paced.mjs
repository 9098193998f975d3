// Benchmark script: awaits job.n small item emits with no browser (SPEC §13), paced to at most job.rate items/s
// (checked every 100 items: ahead of schedule, it sleeps until the schedule catches up).
export const options = { browser: false };

export default async function emitPaced(ctx) {
  const { n, rate } = ctx.job;
  const started = Date.now();
  for (let i = 0; i < n; i++) {
    await ctx.emit.item({ item_type: 'bench', data: { i, name: 'item', price_cents: 1299, tags: ['a', 'b'] } });
    if (i % 100 === 99) {
      const ahead = started + ((i + 1) / rate) * 1000 - Date.now();
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
    }
  }
}
