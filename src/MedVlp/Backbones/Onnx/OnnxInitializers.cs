using System.Text;
using MedVlp.Serialization;
using static TorchSharp.torch;

namespace MedVlp.Backbones.Onnx;

/// <summary>
/// Reads the weights (initializers) of an ONNX model into TorchSharp tensors, so a model exported to ONNX can also run
/// as a trainable TorchSharp module. Exporters keep the PyTorch names of biases and norms but often anonymise the
/// weights of <c>MatMul</c> nodes (a number instead of <c>encoder.layer.0.attention.self.query.weight</c>); those are
/// named through the graph: a <c>MatMul(x, W)</c> whose output feeds an <c>Add</c> with the bias <c>P.bias</c> has the
/// weight <c>P.weight</c>, stored [in, out], so it is transposed into PyTorch's Linear [out, in].
/// </summary>
public static class OnnxInitializers
{
    /// <summary>The largest model file read (protobuf's own 2 GB limit).</summary>
    public const long MaxModelLength = int.MaxValue;

    /// <summary>Reads every floating-point and integer initializer of <paramref name="path"/> under its PyTorch name.</summary>
    /// <param name="path">The .onnx file.</param>
    /// <param name="nameMatMulWeights">Name anonymised MatMul weights through the graph (and transpose them); anonymous
    /// initializers that cannot be named are left out.</param>
    /// <exception cref="ModelFormatException">The file is not an ONNX model with embedded initializers.</exception>
    public static Dictionary<string, Tensor> Load(string path, bool nameMatMulWeights = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"ONNX model {path} does not exist.", path);
        }

        var length = new FileInfo(path).Length;
        if (length > MaxModelLength)
        {
            throw new ModelFormatException(path, null, $"{length} bytes is more than a single-file ONNX model can hold (2 GB).");
        }

        var bytes = File.ReadAllBytes(path);
        var graph = FindGraph(bytes, path);
        var initializers = new List<(string Name, ScalarType Type, long[] Dims, int Offset, int Length)>();
        var nodes = new List<(string Op, List<string> Inputs, List<string> Outputs)>();
        var reader = new Wire(bytes, graph.Offset, graph.Length, path, "graph");
        while (reader.Next(out var field, out var type))
        {
            if (field == 1 && type == 2)
            {
                nodes.Add(ReadNode(reader.Slice("graph.node")));
            }
            else if (field == 5 && type == 2)
            {
                if (ReadInitializer(reader.Slice("graph.initializer"), bytes, path) is { } init)
                {
                    initializers.Add(init);
                }
            }
            else
            {
                reader.Skip(type);
            }
        }

        var names = new Dictionary<string, (string Name, bool Transpose)>(StringComparer.Ordinal);
        foreach (var init in initializers)
        {
            names[init.Name] = (init.Name, false);
        }

        if (nameMatMulWeights)
        {
            var initializerNames = initializers.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
            var consumers = nodes.SelectMany(n => n.Inputs.Select(i => (Input: i, Node: n))).ToLookup(x => x.Input, x => x.Node, StringComparer.Ordinal);
            foreach (var node in nodes.Where(n => n.Op == "MatMul" && n.Inputs.Count == 2 && initializerNames.Contains(n.Inputs[1])))
            {
                var weight = node.Inputs[1];
                var bias = consumers[node.Outputs[0]].Where(c => c.Op == "Add")
                    .SelectMany(c => c.Inputs).FirstOrDefault(i => i.EndsWith(".bias", StringComparison.Ordinal) && initializerNames.Contains(i));
                if (bias is not null && !weight.EndsWith(".weight", StringComparison.Ordinal))
                {
                    names[weight] = (bias[..^".bias".Length] + ".weight", true);
                }
            }
        }

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var init in initializers)
            {
                var (name, transpose) = names[init.Name];
                if (name.All(char.IsAsciiDigit))
                {
                    continue; // anonymous and not named through the graph (a constant of the export)
                }

                var t = empty(init.Dims, init.Type);
                unsafe
                {
                    var expected = t.numel() * t.ElementSize;
                    if (expected != init.Length)
                    {
                        t.Dispose();
                        throw new ModelFormatException(path, init.Name, $"raw_data has {init.Length} bytes but dims [{string.Join(", ", init.Dims)}] of {init.Type} need {expected}.");
                    }

                    bytes.AsSpan(init.Offset, init.Length).CopyTo(new Span<byte>((void*)NativeStorage.DataPointer(t), init.Length));
                }

                if (transpose)
                {
                    var tt = t.t().contiguous();
                    t.Dispose();
                    t = tt;
                }

                if (!result.TryAdd(name, t))
                {
                    t.Dispose();
                    throw new ModelFormatException(path, init.Name, $"two initializers are named {name}.");
                }
            }
        }
        catch
        {
            foreach (var t in result.Values)
            {
                t.Dispose();
            }

            throw;
        }

        return result;
    }

    private static (int Offset, int Length) FindGraph(byte[] bytes, string path)
    {
        var model = new Wire(bytes, 0, bytes.Length, path, "model");
        while (model.Next(out var field, out var type))
        {
            if (field == 7 && type == 2)
            {
                var g = model.Slice("model.graph");
                return (g.Start, g.End - g.Start);
            }

            model.Skip(type);
        }

        throw new ModelFormatException(path, "model.graph", "the file has no graph; it is not an ONNX model.");
    }

    private static (string Op, List<string> Inputs, List<string> Outputs) ReadNode(Wire node)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        var op = "";
        while (node.Next(out var field, out var type))
        {
            switch (field)
            {
                case 1 when type == 2:
                    inputs.Add(node.String());
                    break;
                case 2 when type == 2:
                    outputs.Add(node.String());
                    break;
                case 4 when type == 2:
                    op = node.String();
                    break;
                default:
                    node.Skip(type);
                    break;
            }
        }

        return (op, inputs, outputs);
    }

    private static (string, ScalarType, long[], int, int)? ReadInitializer(Wire t, byte[] bytes, string path)
    {
        var dims = new List<long>();
        int dataType = 0, offset = -1, length = 0;
        var name = "";
        var external = false;
        while (t.Next(out var field, out var type))
        {
            switch (field)
            {
                case 1 when type == 0:
                    dims.Add((long)t.Varint());
                    break;
                case 1 when type == 2:
                    var packed = t.Slice("dims");
                    while (!packed.AtEnd)
                    {
                        dims.Add((long)packed.Varint());
                    }

                    break;
                case 2 when type == 0:
                    dataType = (int)t.Varint();
                    break;
                case 8 when type == 2:
                    name = t.String();
                    break;
                case 9 when type == 2:
                    var raw = t.Slice("raw_data");
                    (offset, length) = (raw.Start, raw.End - raw.Start);
                    break;
                case 14 when type == 0:
                    external = t.Varint() == 1;
                    break;
                default:
                    t.Skip(type);
                    break;
            }
        }

        if (external)
        {
            throw new ModelFormatException(path, name, "the initializer's data is stored in an external file; only self-contained .onnx files are read.");
        }

        ScalarType? scalar = dataType switch
        {
            1 => ScalarType.Float32,
            7 => ScalarType.Int64,
            10 => ScalarType.Float16,
            11 => ScalarType.Float64,
            16 => ScalarType.BFloat16,
            6 => ScalarType.Int32,
            _ => null,
        };
        if (scalar is null || offset < 0 || dims.Any(d => d < 0))
        {
            return null; // typed-field (non-raw) constants, strings and other types are not weights
        }

        return (name, scalar.Value, dims.ToArray(), offset, length);
    }

    /// <summary>A protobuf wire-format cursor over one message's bytes (no copies; bounds checked).</summary>
    private sealed class Wire(byte[] data, int start, int length, string path, string field)
    {
        private int _pos = start;

        public int Start { get; } = start;

        public int End { get; } = start + length;

        public bool AtEnd => _pos >= End;

        public bool Next(out int fieldNumber, out int wireType)
        {
            if (_pos >= End)
            {
                fieldNumber = wireType = 0;
                return false;
            }

            var tag = Varint();
            fieldNumber = (int)(tag >> 3);
            wireType = (int)(tag & 7);
            return true;
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= End)
                {
                    throw Error("a varint runs past the end of its message.");
                }

                var b = data[_pos++];
                value |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0)
                {
                    return value;
                }
            }

            throw Error("a varint is longer than 10 bytes.");
        }

        public Wire Slice(string name)
        {
            var n = Varint();
            if (n > (ulong)(End - _pos))
            {
                throw Error($"{name} claims {n} bytes but only {End - _pos} remain.");
            }

            var slice = new Wire(data, _pos, (int)n, path, name);
            _pos += (int)n;
            return slice;
        }

        public string String()
        {
            var s = Slice("string");
            return Encoding.UTF8.GetString(data, s.Start, s.End - s.Start);
        }

        public void Skip(int wireType)
        {
            switch (wireType)
            {
                case 0:
                    Varint();
                    break;
                case 1:
                    Advance(8);
                    break;
                case 2:
                    Slice("field");
                    break;
                case 5:
                    Advance(4);
                    break;
                default:
                    throw Error($"wire type {wireType} is not valid protobuf.");
            }
        }

        private void Advance(int n)
        {
            if (n > End - _pos)
            {
                throw Error("a fixed-size field runs past the end of its message.");
            }

            _pos += n;
        }

        private ModelFormatException Error(string problem) => new(path, field, $"byte {_pos}: {problem}");
    }
}
