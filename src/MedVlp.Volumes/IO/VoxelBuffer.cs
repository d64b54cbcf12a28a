using System.Runtime.InteropServices;

namespace MedVlp.Volumes.IO;

/// <summary>Allocates the float buffers that readers decode voxels into.</summary>
internal static partial class VoxelBuffer
{
    private const int MadvHugePage = 14; // Linux MADV_HUGEPAGE
    private const long HugePage = 1 << 21;
    private const long AdviseFrom = 8 << 20;
    private static bool s_adviseFailed;

    /// <summary>
    /// An uninitialised array of <paramref name="count"/> floats. Large buffers are pinned (they are never moved
    /// anyway) and, on Linux, advised to use transparent huge pages, as NumPy does for large arrays: a fresh
    /// multi-megabyte volume otherwise costs one page fault per 4 KiB when first written, which dominates the load
    /// time of big volumes on virtual machines. The advice is best effort and never fails the read.
    /// </summary>
    public static float[] Allocate(int count)
    {
        if ((long)count * sizeof(float) < AdviseFrom || !OperatingSystem.IsLinux() || s_adviseFailed)
        {
            return GC.AllocateUninitializedArray<float>(count);
        }

        var array = GC.AllocateUninitializedArray<float>(count, pinned: true);
        AdviseHugePages(array);
        return array;
    }

    private static unsafe void AdviseHugePages(float[] pinnedArray)
    {
        try
        {
            fixed (float* p = pinnedArray)
            {
                var start = ((long)p + HugePage - 1) & ~(HugePage - 1);
                var end = ((long)p + ((long)pinnedArray.Length * sizeof(float))) & ~(HugePage - 1);
                if (end > start)
                {
                    _ = Madvise((nint)start, (nuint)(end - start), MadvHugePage);
                }
            }
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or MarshalDirectiveException)
        {
            s_adviseFailed = true;
        }
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Madvise(nint address, nuint length, int advice);
}
