// What a protocol client needs from "a sheep": send one request, get its response. A TCP SheepClient
// and an in-process Sheep (localRequest) both provide it, so front ends (dog, NBD) work over either.
import type { ReqInit } from '../proto/header.js';
import type { SheepResponse } from './sheep-client.js';

export interface SheepTransport {
  request(init: ReqInit, data?: Uint8Array): Promise<SheepResponse>;
}

/** Adapts anything with localRequest (a Sheep) to the transport interface. */
export function localTransport(sheep: { localRequest(init: ReqInit, data?: Uint8Array): Promise<SheepResponse> }): SheepTransport {
  return { request: (init, data) => sheep.localRequest(init, data) };
}
