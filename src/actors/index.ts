// Registers every production actor kind; shard workers and replay import this module.
import './vdi/machine.js';
import './recovery/machine.js';
