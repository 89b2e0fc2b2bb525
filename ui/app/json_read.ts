/**
 * Checked reading of JSON bodies. The console trusts nothing that arrives over the network: a
 * body that does not follow the contract is refused with a message naming the document and the
 * field, so the screen never shows half-read numbers.
 */

/** A JSON body that does not follow the API contract. */
export class JsonFormatError extends Error {
  override readonly name = "JsonFormatError";
}

/** A JSON object's fields, not yet checked. */
export type Fields = Readonly<Record<string, unknown>>;

/** Reads the fields of one kind of document (named in messages, as in "cluster status"). */
export class JsonReader {
  readonly #document: string;

  constructor(document: string) {
    this.#document = document;
  }

  /** @throws {JsonFormatError} with the document, the field and the problem. */
  fail(where: string, problem: string): never {
    throw new JsonFormatError(`Cannot read ${this.#document}: ${where} ${problem}`);
  }

  /** @throws {JsonFormatError} unless `value` is a (non-array) object. */
  object(value: unknown, where: string): Fields {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.fail(where, "is not an object");
    }
    return value as Fields;
  }

  /** @throws {JsonFormatError} unless `value` is an array of at most `lengthMax` items. */
  list(value: unknown, where: string, lengthMax: number): readonly unknown[] {
    if (!Array.isArray(value)) this.fail(where, "is not a list");
    if (value.length > lengthMax) {
      this.fail(where, `has ${value.length} items but the limit is ${lengthMax}`);
    }
    return value;
  }

  /** @throws {JsonFormatError} unless `value` is a string. */
  text(value: unknown, where: string): string {
    if (typeof value !== "string") this.fail(where, "is not a string");
    return value;
  }

  /** @throws {JsonFormatError} unless `value` is a finite number >= 0. */
  number(value: unknown, where: string): number {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      this.fail(where, `is ${JSON.stringify(value)} but must be a non-negative number`);
    }
    return value;
  }

  /** Like {@linkcode JsonReader.number}, but null or absent gives null. */
  optionalNumber(value: unknown, where: string): number | null {
    return value === null || value === undefined ? null : this.number(value, where);
  }

  /** @throws {JsonFormatError} unless `value` is a safe integer >= 0. */
  count(value: unknown, where: string): number {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      this.fail(where, `is ${JSON.stringify(value)} but must be a non-negative integer`);
    }
    return value;
  }

  /** @throws {JsonFormatError} unless `value` is one of `choices`. */
  choice<T extends string>(value: unknown, where: string, choices: readonly T[]): T {
    const found = choices.find((choice) => choice === value);
    if (found === undefined) {
      const allowed = choices.map((choice) => JSON.stringify(choice)).join(", ");
      this.fail(where, `is ${JSON.stringify(value)} but must be one of ${allowed}`);
    }
    return found;
  }
}
