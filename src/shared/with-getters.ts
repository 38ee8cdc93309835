/**
 * Adds read-only getters to an object built from a literal of methods,
 * keeping it a fast V8 object.
 *
 * V8 keeps an object literal that declares a getter (`{ get x() {...} }`)
 * as a dictionary (a hash table of its properties, 250-850 bytes more than a
 * fast object), and so it does with an object given its own per-instance
 * getter by `Object.defineProperty` from the second instance on. Objects
 * kept once per connected client (a session, its queue, a stream's reader
 * and writer) are many: here the getters live on a prototype shared by every
 * object with the same getter names, and call the instance's own functions,
 * held in one non-enumerable property. The getters read as before; being
 * inherited, they are not copied by `{ ...object }` or `Object.keys`.
 *
 * @internal
 */
const own = Symbol("getters");
const prototypes = new Map<string, object>();

export function withGetters<T extends object, G extends Record<string, () => unknown>>(target: T, getters: G): T & { readonly [K in keyof G]: ReturnType<G[K]> } {
  const names = Object.keys(getters);
  const key = names.join(",");
  let proto = prototypes.get(key);
  if (!proto) {
    proto = {};
    for (const name of names) {
      Object.defineProperty(proto, name, {
        get(this: { [own]: Record<string, () => unknown> }) {
          return this[own][name]!();
        },
        enumerable: true,
        configurable: true,
      });
    }
    prototypes.set(key, proto);
  }
  Object.defineProperty(target, own, { value: getters });
  Object.setPrototypeOf(target, proto);
  return target as T & { readonly [K in keyof G]: ReturnType<G[K]> };
}
