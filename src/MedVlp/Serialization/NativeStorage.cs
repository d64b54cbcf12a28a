using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace MedVlp.Serialization;

/// <summary>
/// Moves bytes between files and a CPU tensor's storage without a managed buffer in between: the file is read straight
/// into the tensor's memory (and written straight from it) in chunks.
/// </summary>
internal static class NativeStorage
{
    private const int Chunk = 1 << 24;

    /// <summary>Fills the contiguous CPU <paramref name="tensor"/> with the bytes of <paramref name="file"/> at <paramref name="offset"/>.</summary>
    public static unsafe void ReadFrom(SafeFileHandle file, long offset, Tensor tensor, string? path, string name)
    {
        var total = tensor.numel() * tensor.ElementSize;
        if (total == 0)
        {
            return;
        }

        var data = (byte*)DataPointer(tensor);
        long done = 0;
        while (done < total)
        {
            var want = (int)Math.Min(Chunk, total - done);
            var read = RandomAccess.Read(file, new Span<byte>(data + done, want), offset + done);
            if (read <= 0)
            {
                throw new ModelFormatException(path, name, $"the file ended after {done} of the tensor's {total} bytes (truncated?).");
            }

            done += read;
        }
    }

    /// <summary>Fills the contiguous CPU <paramref name="tensor"/> from <paramref name="stream"/> (exactly its byte size).</summary>
    public static unsafe void ReadFrom(Stream stream, Tensor tensor, string? path, string name)
    {
        var total = tensor.numel() * tensor.ElementSize;
        var data = (byte*)DataPointer(tensor);
        long done = 0;
        while (done < total)
        {
            var want = (int)Math.Min(Chunk, total - done);
            var read = stream.Read(new Span<byte>(data + done, want));
            if (read <= 0)
            {
                throw new ModelFormatException(path, name, $"the data ended after {done} of the tensor's {total} bytes (truncated?).");
            }

            done += read;
        }
    }

    /// <summary>Writes the bytes of the contiguous CPU <paramref name="tensor"/> to <paramref name="stream"/>.</summary>
    public static unsafe void WriteTo(Tensor tensor, Stream stream)
    {
        var total = tensor.numel() * tensor.ElementSize;
        if (total == 0)
        {
            return;
        }

        var data = (byte*)DataPointer(tensor);
        for (long done = 0; done < total; done += Chunk)
        {
            stream.Write(new ReadOnlySpan<byte>(data + done, (int)Math.Min(Chunk, total - done)));
        }
    }

    /// <summary>The address of the first element of a contiguous CPU tensor.</summary>
    public static IntPtr DataPointer(Tensor tensor)
    {
        if (tensor.device_type != TorchSharp.DeviceType.CPU || !tensor.is_contiguous())
        {
            throw new ArgumentException("Expected a contiguous CPU tensor.", nameof(tensor));
        }

        var pointer = NativeMethods.THSTensor_data(tensor.Handle);
        if (pointer == IntPtr.Zero && tensor.numel() > 0)
        {
            throw new InvalidOperationException("libtorch returned no storage for a non-empty tensor.");
        }

        return pointer;
    }

    private static class NativeMethods
    {
        // The same entry point TorchSharp's own Tensor.bytes uses; LibTorchSharp is loaded by TorchSharp already.
        [DllImport("LibTorchSharp")]
        [DefaultDllImportSearchPaths(DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories)]
        internal static extern IntPtr THSTensor_data(IntPtr handle);
    }
}
