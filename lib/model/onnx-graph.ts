// A small builder of ONNX graphs: nodes with generated output names, float32 / int64 initializers, and the model
// protobuf encoded by onnx-proto (ONNX's onnx.proto compiled for protobufjs). lib/model/onnx.ts writes the networks
// with it.
import type { onnx as Onnx } from 'onnx-proto';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** An attribute value of a node: an int, a float, or a list of ints. */
export type OnnxAttribute = number | { float: number } | readonly number[];

/** The ONNX element types the graphs use (TensorProto.DataType). */
export type OnnxElementType = 'float32' | 'int32' | 'int64';

const ELEMENT_TYPE: Record<OnnxElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
};

/** A graph input or output: its name, element type and dimensions (a string names a symbolic one, e.g. 'batch'). */
export interface OnnxValue {
  name: string;
  type: OnnxElementType;
  dims: readonly (number | string)[];
}

function attribute(name: string, value: OnnxAttribute): Onnx.IAttributeProto {
  const { AttributeType } = onnx.AttributeProto;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new RangeError(`ONNX attribute ${name}: an int attribute must be an integer`);
    return { name, type: AttributeType.INT, i: value };
  }
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: [...(value as number[])] };
  return { name, type: AttributeType.FLOAT, f: (value as { float: number }).float };
}

function valueInfo(value: OnnxValue): Onnx.IValueInfoProto {
  return {
    name: value.name,
    type: {
      tensorType: {
        elemType: ELEMENT_TYPE[value.type],
        shape: { dim: value.dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

/** Nodes and initializers of one graph, in the order they are added (which is a topological order). */
export class OnnxGraph {
  readonly #nodes: Onnx.INodeProto[] = [];
  readonly #initializers: Onnx.ITensorProto[] = [];
  readonly #names = new Set<string>();
  #counter = 0;

  #fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.#counter++}`;
    while (this.#names.has(name));
    this.#names.add(name);
    return name;
  }

  /** Adds a float32 initializer (little-endian raw data) and returns its name. */
  floats(name: string, dims: readonly number[], values: Float32Array): string {
    if (this.#names.has(name)) throw new RangeError(`ONNX initializer ${name} exists already`);
    this.#names.add(name);
    this.#pushFloats(name, dims, values);
    return name;
  }

  #pushFloats(name: string, dims: readonly number[], values: Float32Array): void {
    const size = values.length;
    if (size !== dims.reduce((a, b) => a * b, 1))
      throw new RangeError(`ONNX tensor ${name}: ${size} values for [${dims}]`);
    const raw = new Uint8Array(size * 4);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < size; i++) view.setFloat32(i * 4, values[i] as number, true);
    this.#initializers.push({ name, dims: [...dims], dataType: ELEMENT_TYPE.float32, rawData: raw });
  }

  /** A float32 constant with a generated name. */
  constant(hint: string, dims: readonly number[], values: ArrayLike<number>): string {
    const name = this.#fresh(hint);
    this.#pushFloats(name, dims, Float32Array.from(values));
    return name;
  }

  /** An int64 constant (shapes, axes, split sizes) with a generated name. */
  int64s(hint: string, values: readonly number[]): string {
    const name = this.#fresh(hint);
    this.#initializers.push({ name, dims: [values.length], dataType: ELEMENT_TYPE.int64, int64Data: [...values] });
    return name;
  }

  /** An int32 constant with a generated name. */
  int32s(hint: string, dims: readonly number[], values: readonly number[]): string {
    const name = this.#fresh(hint);
    this.#initializers.push({ name, dims: [...dims], dataType: ELEMENT_TYPE.int32, int32Data: [...values] });
    return name;
  }

  /** Adds a node of `op` and returns the names of its `outputs` outputs (one by default). */
  nodes(
    op: string,
    inputs: readonly string[],
    attributes: Record<string, OnnxAttribute> = {},
    outputs = 1,
    outputNames?: readonly string[],
  ): string[] {
    const names = outputNames ? [...outputNames] : Array.from({ length: outputs }, () => this.#fresh(op));
    for (const n of outputNames ?? []) this.#names.add(n);
    this.#nodes.push({
      opType: op,
      name: this.#fresh(`${op}_node`),
      input: [...inputs],
      output: names,
      attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v)),
    });
    return names;
  }

  /** Adds a node of `op` with one output and returns its name (`outputName` when given). */
  node(op: string, inputs: readonly string[], attributes: Record<string, OnnxAttribute> = {}, outputName?: string) {
    return this.nodes(op, inputs, attributes, 1, outputName === undefined ? undefined : [outputName])[0] as string;
  }

  /** The graph's protobuf message. */
  proto(name: string, inputs: readonly OnnxValue[], outputs: readonly OnnxValue[]): Onnx.IGraphProto {
    return {
      name,
      node: this.#nodes,
      initializer: this.#initializers,
      input: inputs.map(valueInfo),
      output: outputs.map(valueInfo),
    };
  }
}

/** The model around a graph: IR version, the default-domain opset, producer and metadata properties. */
export interface OnnxModelInfo {
  irVersion: number;
  opset: number;
  producerName: string;
  producerVersion: string;
  metadata: Record<string, string>;
}

/** Encodes a model (ModelProto) holding `graph`. */
export function encodeModel(graph: Onnx.IGraphProto, info: OnnxModelInfo): Uint8Array {
  const message = onnx.ModelProto.create({
    irVersion: info.irVersion,
    opsetImport: [{ domain: '', version: info.opset }],
    producerName: info.producerName,
    producerVersion: info.producerVersion,
    graph,
    metadataProps: Object.entries(info.metadata).map(([key, value]) => ({ key, value })),
  });
  const problem = onnx.ModelProto.verify(message);
  if (problem !== null) throw new TypeError(`ONNX model: ${problem}`);
  return onnx.ModelProto.encode(message).finish();
}
