using System.Runtime.InteropServices;

namespace MedVlp.Volumes.IO;

/// <summary>What kind of file system object a path names (after following symbolic links).</summary>
internal enum FileKind
{
    Missing,
    Regular,
    Directory,
    Fifo,
    CharacterDevice,
    BlockDevice,
    Socket,

    /// <summary>The platform cannot tell (not Linux); only directories and missing paths are recognised there.</summary>
    Unknown,
}

/// <summary>
/// Opens only regular files, and resolves the data files a header names (MetaImage <c>ElementDataFile</c>, NRRD
/// <c>data file</c>) inside the header's folder or a trusted folder only, after resolving symbolic links.
/// </summary>
/// <remarks>
/// Opening a FIFO blocks until someone writes to it, and a device such as <c>/dev/zero</c> never ends; both are
/// refused before they are opened. On Linux the kind comes from <c>statx(2)</c>; elsewhere only folders are recognised.
/// </remarks>
internal static partial class SafeFile
{
    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const int StatxSize = 256;
    private const int StatxModeOffset = 28;
    private const int SIfMt = 0xF000, SIfSock = 0xC000, SIfReg = 0x8000, SIfBlk = 0x6000, SIfDir = 0x4000, SIfChr = 0x2000, SIfIfo = 0x1000;
    private static bool s_statxMissing;

    /// <summary>The kind of object at <paramref name="path"/>, following symbolic links.</summary>
    public static FileKind KindOf(string path)
    {
        if (OperatingSystem.IsLinux() && !s_statxMissing)
        {
            try
            {
                return StatxKind(path);
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
            {
                s_statxMissing = true;
            }
        }

        return Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Unknown : FileKind.Missing;
    }

    /// <summary>Words for a kind, as used in error messages.</summary>
    public static string Describe(FileKind kind) => kind switch
    {
        FileKind.Directory => "a folder",
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        FileKind.Missing => "missing",
        _ => "a regular file",
    };

    /// <summary>Throws unless <paramref name="path"/> is a regular file (or a link to one).</summary>
    /// <param name="path">The file to check.</param>
    /// <param name="reportedPath">The file the error names (the header that pointed at <paramref name="path"/>), or null for <paramref name="path"/>.</param>
    /// <param name="field">The header field that named the file, or null.</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/> and no header named it.</exception>
    /// <exception cref="VolumeFormatException">It is a folder, FIFO, device or socket, or a header named a missing file.</exception>
    public static void RequireRegular(string path, string? reportedPath = null, string? field = null)
    {
        var kind = KindOf(path);
        if (kind is FileKind.Regular or FileKind.Unknown)
        {
            return;
        }

        if (kind == FileKind.Missing)
        {
            if (reportedPath is null)
            {
                throw new FileNotFoundException($"{path}: no such file.", path);
            }

            throw new VolumeFormatException(reportedPath, field, $"names {path}, which does not exist.");
        }

        var problem = $"{(reportedPath is null ? "it" : path)} is {Describe(kind)}, not a regular file; MedVlp reads volumes only from regular files (a FIFO would block and a device never ends).";
        throw new VolumeFormatException(reportedPath ?? path, field ?? "file type", problem);
    }

    /// <summary>Opens a regular file for reading; anything else is refused before it is opened.</summary>
    /// <inheritdoc cref="RequireRegular" path="/exception"/>
    public static FileStream OpenRead(string path, int bufferSize = 1 << 16, FileOptions options = FileOptions.SequentialScan, string? reportedPath = null, string? field = null)
    {
        RequireRegular(path, reportedPath, field);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize, options);
    }

    /// <summary>
    /// Resolves the data file <paramref name="name"/> that the header <paramref name="headerPath"/> names: relative names
    /// are taken from the header's folder; the result, with every symbolic link resolved, must lie inside the header's
    /// (resolved) folder or inside one of <paramref name="trustedFolders"/>, and be a regular file.
    /// </summary>
    /// <returns>The resolved absolute path of the data file.</returns>
    /// <exception cref="VolumeFormatException">The name escapes the allowed folders, does not exist, or is not a regular file.</exception>
    public static string ResolveDataFile(string headerPath, string name, string field, IReadOnlyList<string> trustedFolders)
    {
        if (name.Length == 0 || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new VolumeFormatException(headerPath, field, "names an empty or invalid data file name.");
        }

        var headerFolder = Path.GetDirectoryName(Path.GetFullPath(headerPath)) ?? Path.GetFullPath(".");
        var candidate = Path.IsPathRooted(name) ? Path.GetFullPath(name) : Path.GetFullPath(Path.Combine(headerFolder, name));
        var trusted = trustedFolders.Where(t => !string.IsNullOrEmpty(t)).Select(Path.GetFullPath).ToList();

        // First by name (".." and absolute paths), before the file is even looked at: an error must not reveal whether
        // a file outside the allowed folders exists. Then, for a file that exists, with every symbolic link resolved.
        if (!IsInside(candidate, headerFolder) && !trusted.Any(t => IsInside(candidate, t)))
        {
            throw Outside(headerPath, name, field, headerFolder, null);
        }

        if (KindOf(candidate) == FileKind.Missing)
        {
            throw new VolumeFormatException(headerPath, field, $"names the data file {name}, which does not exist ({candidate}).");
        }

        var resolved = RealPath(candidate);
        var roots = new List<string> { RealPath(headerFolder) };
        roots.AddRange(trusted.Where(Directory.Exists).Select(RealPath));
        if (!roots.Any(r => IsInside(resolved, r)))
        {
            throw Outside(headerPath, name, field, roots[0], resolved);
        }

        RequireRegular(resolved, headerPath, field);
        return resolved;
    }

    private static VolumeFormatException Outside(string headerPath, string name, string field, string folder, string? resolved) =>
        new(headerPath, field,
            $"names the data file {name}{(resolved is null ? "" : $" (through symbolic links: {resolved})")}, which lies outside the header's folder {folder}. " +
            "Detached data files must lie in the header's folder (or a subfolder); for trusted inputs add their folder to VolumeReadOptions.TrustedDataFolders.");

    /// <summary>True when <paramref name="path"/> is strictly inside <paramref name="folder"/> (both resolved and absolute).</summary>
    private static bool IsInside(string path, string folder)
    {
        var comparison = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        var prefix = Path.EndsInDirectorySeparator(folder) ? folder : folder + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, comparison) && path.Length > prefix.Length;
    }

    /// <summary>The canonical absolute path with every symbolic link resolved (POSIX realpath).</summary>
    private static string RealPath(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            var p = NativeRealPath(path, 0);
            if (p != 0)
            {
                try
                {
                    return Marshal.PtrToStringUTF8(p) ?? path;
                }
                finally
                {
                    Free(p);
                }
            }
        }

        // Windows, or realpath failed: resolve the last component's link chain at least.
        var full = Path.GetFullPath(path);
        var target = File.Exists(full) ? File.ResolveLinkTarget(full, returnFinalTarget: true) : Directory.ResolveLinkTarget(full, returnFinalTarget: true);
        return target?.FullName ?? full;
    }

    private static unsafe FileKind StatxKind(string path)
    {
        var buffer = stackalloc byte[StatxSize];
        if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0)
        {
            return File.Exists(path) || Directory.Exists(path) ? FileKind.Unknown : FileKind.Missing;
        }

        var mode = *(ushort*)(buffer + StatxModeOffset);
        return (mode & SIfMt) switch
        {
            SIfReg => FileKind.Regular,
            SIfDir => FileKind.Directory,
            SIfIfo => FileKind.Fifo,
            SIfChr => FileKind.CharacterDevice,
            SIfBlk => FileKind.BlockDevice,
            SIfSock => FileKind.Socket,
            _ => FileKind.Unknown,
        };
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static unsafe partial int Statx(int dirFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial nint NativeRealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial void Free(nint pointer);
}
