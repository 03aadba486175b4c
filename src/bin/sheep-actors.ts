#!/usr/bin/env node
import { main } from '../cli/sheep-actors.js';
await main(process.argv.slice(2), 'sheep-actors');
