using System.Runtime.InteropServices;
using System.Security.Cryptography;
using MedVlp.Serialization;

namespace MedVlp.Packaging;

/// <summary>File-system primitives of model packages: regular-file checks (no FIFO, device or directory is ever
/// opened), hashing, durable writes and the atomic replacement of a package folder.</summary>
internal static partial class PackageFiles
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const ushort FileTypeMask = 0xF000;
    private const ushort RegularFile = 0x8000;
    private const ushort DirectoryType = 0x4000;
    private const uint RenameExchange = 1 << 1;

    /// <summary>Throws a <see cref="ModelFormatException"/> unless <paramref name="path"/> is an existing regular file
    /// (symbolic links are followed) no longer than <paramref name="maxLength"/>; returns its length.</summary>
    public static long RequireRegularFile(string path, string? field, long maxLength = long.MaxValue)
    {
        var kind = KindOf(path);
        if (kind is null)
        {
            throw new ModelFormatException(path, field, "the file is missing.");
        }

        if (kind != RegularFile)
        {
            throw new ModelFormatException(path, field, $"expected a regular file, found {Describe(kind.Value)}.");
        }

        var length = new FileInfo(path).Length;
        if (length > maxLength)
        {
            throw new ModelFormatException(path, field, $"expected at most {maxLength} bytes, found {length}.");
        }

        return length;
    }

    /// <summary>Reads a regular file of bounded length completely.</summary>
    public static byte[] ReadBounded(string path, string? field, long maxLength)
    {
        RequireRegularFile(path, field, maxLength);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        var length = stream.Length;
        if (length > maxLength)
        {
            throw new ModelFormatException(path, field, $"expected at most {maxLength} bytes, found {length}.");
        }

        var bytes = new byte[length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>SHA-256 (lower-case hex) and length of a regular file.</summary>
    public static (string Sha256, long Size) Hash(string path, string? field)
    {
        RequireRegularFile(path, field);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var hash = SHA256.HashData(stream);
        return (Convert.ToHexStringLower(hash), stream.Length);
    }

    /// <summary>Flushes a file's data to the disk (fsync).</summary>
    public static void Flush(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Flushes a directory's entries to the disk (Linux and macOS; a no-op elsewhere).</summary>
    public static void FlushDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var fd = Open(path, 0);
        if (fd < 0)
        {
            return;
        }

        _ = Fsync(fd);
        _ = Close(fd);
    }

    /// <summary>
    /// Replaces the folder <paramref name="target"/> by <paramref name="staged"/> (a complete package beside it). On Linux
    /// the two are exchanged in one atomic <c>renameat2(RENAME_EXCHANGE)</c>, so the target path always holds a complete
    /// package; elsewhere the old folder is first renamed aside (and restored by <see cref="Recover"/> if the process dies
    /// between the two renames). The previous package is deleted afterwards.
    /// </summary>
    public static void Replace(string staged, string target)
    {
        var parent = Path.GetDirectoryName(Path.GetFullPath(target))!;
        if (!Directory.Exists(target))
        {
            Directory.Move(staged, target);
            FlushDirectory(parent);
            return;
        }

        if (OperatingSystem.IsLinux() && RenameAt2(AtFdCwd, staged, AtFdCwd, target, RenameExchange) == 0)
        {
            FlushDirectory(parent);
            Directory.Delete(staged, recursive: true);
            return;
        }

        var aside = AsidePath(target);
        Directory.Move(target, aside);
        Directory.Move(staged, target);
        FlushDirectory(parent);
        Directory.Delete(aside, recursive: true);
    }

    /// <summary>Puts back a package left aside by an interrupted <see cref="Replace"/> (non-Linux systems only).</summary>
    public static void Recover(string target)
    {
        var aside = AsidePath(target);
        if (!Directory.Exists(target) && Directory.Exists(aside))
        {
            Directory.Move(aside, target);
        }
    }

    /// <summary>A fresh staging folder beside <paramref name="target"/> (same file system, so the final rename is atomic).</summary>
    public static string StagingPath(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.saving-{Environment.ProcessId}-{Guid.NewGuid():N}");
    }

    private static string AsidePath(string target)
    {
        var full = Path.GetFullPath(target).TrimEnd(Path.DirectorySeparatorChar);
        return Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.previous");
    }

    /// <summary>The file type bits (S_IFMT) of <paramref name="path"/> after following links, or null when it does not exist.</summary>
    private static ushort? KindOf(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            // struct statx has the same layout on every Linux architecture: stx_mode is the u16 at offset 28.
            var buffer = new byte[256];
            if (Statx(AtFdCwd, path, 0, StatxType, buffer) == 0)
            {
                return (ushort)(BitConverter.ToUInt16(buffer, 28) & FileTypeMask);
            }

            return File.Exists(path) || Directory.Exists(path) ? (ushort)0 : null;
        }

        if (Directory.Exists(path))
        {
            return DirectoryType;
        }

        if (!File.Exists(path))
        {
            return null;
        }

        var attributes = File.GetAttributes(path);
        return (attributes & FileAttributes.Device) != 0 ? (ushort)0x2000 : RegularFile;
    }

    private static string Describe(ushort kind) => kind switch
    {
        DirectoryType => "a directory",
        0x1000 => "a FIFO (named pipe), which would block",
        0x2000 => "a character device",
        0x6000 => "a block device",
        0xC000 => "a socket",
        _ => $"a special file (type 0x{kind:x4})",
    };

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, [Out] byte[] buffer);

    [LibraryImport("libc", EntryPoint = "renameat2", StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int RenameAt2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Close(int fd);
}
