// Streamr's loggers write to stdout by default; every Vouch script that
// loads Streamr's packages speaks JSON lines on stdout, so this module,
// imported before any other @streamr package, sends every Streamr log line
// to stderr instead (JSON, level from LOG_LEVEL, default warn).
import { createRequire } from 'node:module'
import pino from 'pino'
import { Logger } from '@streamr/utils'

process.env.LOG_LEVEL ??= 'warn' // child loggers read it too
const rootLogger = pino({
  name: 'streamr',
  level: process.env.LOG_LEVEL,
  formatters: { level: (label) => ({ level: label }) },
}, pino.destination(2))
// The ESM and CommonJS builds of @streamr/utils are separate module instances.
Logger.rootLogger = rootLogger
createRequire(import.meta.url)('@streamr/utils').Logger.rootLogger = rootLogger
for (const method of ['log', 'info', 'debug']) console[method] = console.error
