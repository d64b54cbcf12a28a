using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;
using MedVlp.Serialization;
using static TorchSharp.torch;

namespace MedVlp.Weights;

/// <summary>A storage named by a <c>torch.save</c> persistent id: element type, archive key and element count.</summary>
internal sealed record PickledStorage(ScalarType DType, string Key, long ElementCount);

/// <summary>A tensor described by <c>torch._utils._rebuild_tensor_v2</c>: a view (offset, size, stride) of a storage.</summary>
internal sealed record PickledTensor(PickledStorage Storage, long Offset, long[] Size, long[] Stride);

/// <summary>A Python dict or OrderedDict, in insertion order.</summary>
internal sealed class PickledDict : List<KeyValuePair<object?, object?>>;

/// <summary>
/// A pickle reader that reconstructs only what <c>torch.save</c> of a state dict contains: numbers, strings, bytes,
/// lists, tuples, dicts, <c>collections.OrderedDict</c>, <c>torch.*Storage</c> persistent ids and the tensor/parameter
/// rebuild functions. Any other global (a class or function the pickle would call) is refused with an exception naming
/// it, before anything is built from it; nothing from the file is ever executed.
/// </summary>
internal sealed class RestrictedUnpickler
{
    private static readonly Dictionary<string, ScalarType> StorageTypes = new(StringComparer.Ordinal)
    {
        ["FloatStorage"] = ScalarType.Float32,
        ["DoubleStorage"] = ScalarType.Float64,
        ["HalfStorage"] = ScalarType.Float16,
        ["BFloat16Storage"] = ScalarType.BFloat16,
        ["LongStorage"] = ScalarType.Int64,
        ["IntStorage"] = ScalarType.Int32,
        ["ShortStorage"] = ScalarType.Int16,
        ["CharStorage"] = ScalarType.Int8,
        ["ByteStorage"] = ScalarType.Byte,
        ["BoolStorage"] = ScalarType.Bool,
    };

    private static readonly object Mark = new();

    private readonly byte[] _data;
    private readonly string? _path;
    private readonly string _field;
    private readonly List<object?> _stack = [];
    private readonly List<int> _marks = [];
    private readonly Dictionary<long, object?> _memo = [];
    private int _pos;

    private RestrictedUnpickler(byte[] data, string? path, string field)
    {
        _data = data;
        _path = path;
        _field = field;
    }

    private sealed record Global(string Module, string Name);

    private sealed record StorageType(ScalarType DType);

    /// <summary>Unpickles <paramref name="data"/>; <paramref name="field"/> names it in errors (for example <c>archive/data.pkl</c>).</summary>
    public static object? Load(byte[] data, string? path, string field) => new RestrictedUnpickler(data, path, field).Run();

    private ModelFormatException Error(string problem) => new(_path, _field, $"byte {_pos}: {problem}");

    private object? Run()
    {
        while (true)
        {
            if (_pos >= _data.Length)
            {
                throw Error("the pickle ends without a STOP opcode (truncated?).");
            }

            var op = _data[_pos++];
            switch (op)
            {
                case 0x80: // PROTO
                    var proto = ReadByte();
                    if (proto > 5)
                    {
                        throw Error($"pickle protocol {proto} is newer than 5.");
                    }

                    break;
                case 0x95: // FRAME
                    Skip(8);
                    break;
                case (byte)'.': // STOP
                    if (_stack.Count != 1 || _marks.Count != 0)
                    {
                        throw Error($"STOP with {_stack.Count} items on the stack; expected exactly one.");
                    }

                    return _stack[0];
                case (byte)'(':
                    _marks.Add(_stack.Count);
                    break;
                case (byte)'}':
                    Push(new PickledDict());
                    break;
                case (byte)']':
                    Push(new List<object?>());
                    break;
                case (byte)')':
                    Push(Array.Empty<object?>());
                    break;
                case (byte)'t': // TUPLE
                    Push(PopToMark().ToArray());
                    break;
                case (byte)'l': // LIST
                    Push(PopToMark());
                    break;
                case (byte)'d': // DICT
                    {
                        var items = PopToMark();
                        Push(ToDict(items, new PickledDict()));
                        break;
                    }

                case 0x85:
                    Push(new[] { Pop() });
                    break;
                case 0x86:
                    {
                        var b = Pop();
                        var a = Pop();
                        Push(new[] { a, b });
                        break;
                    }

                case 0x87:
                    {
                        var c = Pop();
                        var b = Pop();
                        var a = Pop();
                        Push(new[] { a, b, c });
                        break;
                    }

                case (byte)'s': // SETITEM
                    {
                        var value = Pop();
                        var key = Pop();
                        DictOnTop("SETITEM").Add(new(key, value));
                        break;
                    }

                case (byte)'u': // SETITEMS
                    {
                        var items = PopToMark();
                        ToDict(items, DictOnTop("SETITEMS"));
                        break;
                    }

                case (byte)'a': // APPEND
                    {
                        var value = Pop();
                        ListOnTop("APPEND").Add(value);
                        break;
                    }

                case (byte)'e': // APPENDS
                    {
                        var items = PopToMark();
                        ListOnTop("APPENDS").AddRange(items);
                        break;
                    }

                case (byte)'J':
                    Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4)));
                    break;
                case (byte)'K':
                    Push((long)ReadByte());
                    break;
                case (byte)'M':
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2)));
                    break;
                case 0x8a: // LONG1
                    {
                        var n = ReadByte();
                        var value = new BigInteger(Take(n), isUnsigned: false, isBigEndian: false);
                        if (value < long.MinValue || value > long.MaxValue)
                        {
                            throw Error("an integer does not fit in 64 bits.");
                        }

                        Push((long)value);
                        break;
                    }

                case 0x88:
                    Push(true);
                    break;
                case 0x89:
                    Push(false);
                    break;
                case (byte)'N':
                    Push(null);
                    break;
                case (byte)'G':
                    Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8)));
                    break;
                case (byte)'X':
                    Push(ReadString(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))));
                    break;
                case 0x8c:
                    Push(ReadString(ReadByte()));
                    break;
                case 0x8d:
                    Push(ReadString(BinaryPrimitives.ReadUInt64LittleEndian(Take(8))));
                    break;
                case (byte)'C':
                    Push(Take(ReadByte()).ToArray());
                    break;
                case (byte)'B':
                    Push(Take(CheckedLength(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray());
                    break;
                case (byte)'q':
                    _memo[ReadByte()] = Peek();
                    break;
                case (byte)'r':
                    _memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek();
                    break;
                case 0x94: // MEMOIZE
                    _memo[_memo.Count] = Peek();
                    break;
                case (byte)'h':
                    Push(Recall(ReadByte()));
                    break;
                case (byte)'j':
                    Push(Recall(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))));
                    break;
                case (byte)'0':
                    Pop();
                    break;
                case (byte)'1':
                    PopToMark();
                    break;
                case (byte)'2':
                    Push(Peek());
                    break;
                case (byte)'c': // GLOBAL
                    {
                        var module = ReadLine();
                        var name = ReadLine();
                        Push(ResolveGlobal(module, name));
                        break;
                    }

                case 0x93: // STACK_GLOBAL
                    {
                        var name = Pop() as string ?? throw Error("STACK_GLOBAL expects two strings.");
                        var module = Pop() as string ?? throw Error("STACK_GLOBAL expects two strings.");
                        Push(ResolveGlobal(module, name));
                        break;
                    }

                case (byte)'Q': // BINPERSID
                    Push(PersistentLoad(Pop()));
                    break;
                case (byte)'R': // REDUCE
                    {
                        var args = Pop() as object?[] ?? throw Error("REDUCE expects an argument tuple.");
                        var callable = Pop() as Global ?? throw Error("REDUCE expects a callable created by GLOBAL.");
                        Push(Call(callable, args));
                        break;
                    }

                case (byte)'b': // BUILD
                    {
                        Pop(); // state: OrderedDict attributes such as _metadata, or a tensor's Python attributes; not kept
                        var target = Peek();
                        if (target is not (PickledDict or PickledTensor))
                        {
                            throw Error($"BUILD on {Describe(target)}; only dicts and tensors take state here.");
                        }

                        break;
                    }

                default:
                    throw Error($"opcode 0x{op:x2} ('{(char)op}') is not one a torch.save state dict uses.");
            }
        }
    }

    private object ResolveGlobal(string module, string name)
    {
        if (module == "collections" && name == "OrderedDict")
        {
            return new Global(module, name);
        }

        if (module == "torch._utils" && name is "_rebuild_tensor_v2" or "_rebuild_tensor" or "_rebuild_parameter")
        {
            return new Global(module, name);
        }

        if (module == "torch" && StorageTypes.TryGetValue(name, out var dtype))
        {
            return new StorageType(dtype);
        }

        throw Error($"the pickle references the global {module}.{name}. MedVlp reconstructs only tensors and plain containers " +
            "(collections.OrderedDict, torch.*Storage, torch._utils._rebuild_tensor_v2/_rebuild_parameter) and never calls other code; " +
            "re-save the checkpoint as a state dict (torch.save(model.state_dict(), path)) or as safetensors.");
    }

    private object? Call(Global callable, object?[] args)
    {
        switch (callable.Name)
        {
            case "OrderedDict":
                if (args.Length != 0)
                {
                    throw Error("collections.OrderedDict is called with arguments; expected ().");
                }

                return new PickledDict();
            case "_rebuild_tensor_v2" or "_rebuild_tensor":
                {
                    if (args.Length < 4 || args[0] is not PickledStorage storage || args[1] is not long offset ||
                        args[2] is not object?[] size || args[3] is not object?[] stride || size.Length != stride.Length)
                    {
                        throw Error($"torch._utils.{callable.Name} expects (storage, offset, size, stride, ...), found ({string.Join(", ", args.Select(Describe))}).");
                    }

                    var sizes = size.Select(s => s is long v && v >= 0 ? v : throw Error($"tensor size {Describe(s)} is not a non-negative integer.")).ToArray();
                    var strides = stride.Select(s => s is long v && v >= 0 ? v : throw Error($"tensor stride {Describe(s)} is not a non-negative integer.")).ToArray();
                    if (offset < 0)
                    {
                        throw Error($"storage offset {offset} is negative.");
                    }

                    CheckExtent(storage, offset, sizes, strides);
                    return new PickledTensor(storage, offset, sizes, strides);
                }

            case "_rebuild_parameter":
                return args.Length >= 1 && args[0] is PickledTensor t ? t : throw Error("torch._utils._rebuild_parameter expects a tensor.");
            default:
                throw Error($"{callable.Module}.{callable.Name} cannot be called.");
        }
    }

    private void CheckExtent(PickledStorage storage, long offset, long[] size, long[] stride)
    {
        try
        {
            long count = 1, last = offset;
            for (var d = 0; d < size.Length; d++)
            {
                count = checked(count * size[d]);
                if (size[d] > 0)
                {
                    last = checked(last + ((size[d] - 1) * stride[d]));
                }
            }

            if (count > 0 && last >= storage.ElementCount)
            {
                throw Error($"a tensor of size [{string.Join(", ", size)}], stride [{string.Join(", ", stride)}] at offset {offset} reaches element {last} of storage {storage.Key}, which has {storage.ElementCount}.");
            }
        }
        catch (OverflowException ex)
        {
            throw new ModelFormatException(_path, _field, $"byte {_pos}: a tensor's size or stride overflows 64 bits.", ex);
        }
    }

    private PickledStorage PersistentLoad(object? pid)
    {
        if (pid is not object?[] { Length: 5 } t || t[0] is not "storage" || t[1] is not StorageType type ||
            t[2] is not string key || t[3] is not string || t[4] is not long count || count < 0)
        {
            throw Error($"persistent id {Describe(pid)} is not ('storage', torch.XStorage, key, location, numel).");
        }

        if (key.Length == 0 || key.Length > 64 || !key.All(char.IsAsciiLetterOrDigit))
        {
            throw Error($"storage key \"{key}\" is not a plain archive name.");
        }

        return new PickledStorage(type.DType, key, count);
    }

    private PickledDict ToDict(List<object?> items, PickledDict dict)
    {
        if (items.Count % 2 != 0)
        {
            throw Error("a dict is built from an odd number of items.");
        }

        for (var i = 0; i < items.Count; i += 2)
        {
            dict.Add(new(items[i], items[i + 1]));
        }

        return dict;
    }

    private PickledDict DictOnTop(string op) => Peek() as PickledDict ?? throw Error($"{op} expects a dict on the stack, found {Describe(Peek())}.");

    private List<object?> ListOnTop(string op) => Peek() as List<object?> ?? throw Error($"{op} expects a list on the stack, found {Describe(Peek())}.");

    private object? Recall(long key) => _memo.TryGetValue(key, out var value) ? value : throw Error($"memo key {key} was never stored.");

    private void Push(object? value) => _stack.Add(value);

    private object? Pop()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _marks[^1] == _stack.Count))
        {
            throw Error("the stack is empty.");
        }

        var value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object? Peek() => _stack.Count > 0 ? _stack[^1] : throw Error("the stack is empty.");

    private List<object?> PopToMark()
    {
        if (_marks.Count == 0)
        {
            throw Error("no MARK to pop to.");
        }

        var at = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(at, _stack.Count - at);
        _stack.RemoveRange(at, _stack.Count - at);
        return items;
    }

    private byte ReadByte() => Take(1)[0];

    private void Skip(int n) => Take(n);

    private int CheckedLength(ulong n) => n <= (ulong)(_data.Length - _pos) ? (int)n : throw Error($"a length of {n} bytes runs past the end of the pickle ({_data.Length - _pos} bytes left).");

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n > _data.Length - _pos)
        {
            throw Error($"{n} bytes are needed but only {_data.Length - _pos} remain (truncated?).");
        }

        var span = _data.AsSpan(_pos, n);
        _pos += n;
        return span;
    }

    private string ReadString(ulong length) => Encoding.UTF8.GetString(Take(CheckedLength(length)));

    private string ReadLine()
    {
        var end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0 || end - _pos > 256)
        {
            throw Error("GLOBAL expects a short newline-terminated name.");
        }

        var text = Encoding.ASCII.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return text;
    }

    private static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"\"{(s.Length > 40 ? s[..40] + "..." : s)}\"",
        long l => l.ToString(CultureInfo.InvariantCulture),
        object?[] t => $"tuple({t.Length})",
        PickledDict => "dict",
        List<object?> => "list",
        PickledTensor => "tensor",
        PickledStorage => "storage",
        _ => value.GetType().Name,
    };
}
