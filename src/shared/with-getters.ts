/**
 * Adds read-only getters to an object built from a literal of methods.
 *
 * V8 builds an object literal that declares a getter (`{ get x() {...} }`) in
 * dictionary mode: a hash table of its properties, ~250-850 bytes more than
 * the same object in fast mode. Objects kept once per connected client (a
 * stream's reader and writer, a session) are many; getters added with
 * `Object.defineProperty` keep the object in fast mode and read the same.
 *
 * @internal
 */
export function withGetters<T extends object, G extends Record<string, () => unknown>>(target: T, getters: G): T & { readonly [K in keyof G]: ReturnType<G[K]> } {
  for (const name of Object.keys(getters)) {
    Object.defineProperty(target, name, { get: getters[name], enumerable: true, configurable: true });
  }
  return target as T & { readonly [K in keyof G]: ReturnType<G[K]> };
}
