/**
 * The frame fd offer's two constants (see frame-fd.ts), apart from its codec:
 * `quarry run` spawns the executor before it loads anything else, and these
 * are all the spawn needs (frame-fd.ts loads msgpackr and its native addon).
 */

/** The descriptor the runtime offers for frames: the first one after stdin, stdout and stderr. */
export const FRAME_FD = 3;

/** Environment variable by which the runtime offers {@link FRAME_FD} (its value is the fd number). */
export const FRAME_FD_ENV = 'QUARRY_FRAME_FD';
