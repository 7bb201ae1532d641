"""The one walker of data trees: every file once, link cycles and files reached twice refused.

Every command that lists the files of an image tree (classification trees, ImageNet-C / -P
trees, ``data check``, the sources of ``make-c`` / ``make-p``, the ImageNet variants, the CIFAR
arrays) lists them through a :class:`TreeWalk`. The rule is ImageFolder's: the files of a class
folder are the files at any depth below it, links followed. Links make two faults possible, and
both are refused in one line, the same in every command:

* a link cycle (``val/<class>/loop -> ..``): a folder that is its own ancestor would be walked
  forever (and other classes' images scored under one class);
* a file or folder reached twice (a link to a sibling file, two class folders that are one
  folder): its images would be counted twice, or under two labels.

A folder's identity is its ``(device, inode)``; a file's is its real place, the identity of the
folder it really lies in and its name there (links resolved; for a file that is not a link, the
folder being listed and the name in the listing), so a walk costs no extra system call per
plain file. Hard links are separate names of separate
files to a user, like copies: they are counted as such. :meth:`TreeWalk.fingerprint`
is a cheap listing fingerprint (relative names, sizes, modification times) of what was listed:
a tree regenerated at the same path gets another one.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator

from gcpbench.errors import GcpbenchError

FolderId = tuple[int, int]  # (device, inode)
FileKey = tuple[int, int, str]  # the real folder's (device, inode) and the file's name


def _ancestors_of(folder: str) -> dict[FolderId, str]:
    """The folders above ``folder`` (its real path's parents): a link to one of them is a cycle
    too (``val/<class>/loop -> ..`` reaches ``val/``, which holds the class itself)."""
    found = {}
    for parent in Path(os.path.realpath(folder)).parents:
        try:
            stat = os.stat(parent)
        except OSError:
            continue
        found[(stat.st_dev, stat.st_ino)] = str(parent)
    return found


def _matches(name: str, extensions: tuple[str, ...] | None) -> bool:
    """A data file: one of ``extensions`` and not hidden (hidden files are never data: a killed
    ``make-c`` leaves ``.<name>.<pid>.tmp.JPEG``, macOS ``._<name>``)."""
    return not name.startswith(".") and (extensions is None or name.lower().endswith(extensions))


class TreeWalk:
    """Files listed by one command: each at most once. Use one walk for everything a command
    counts together (all classes, all corruption folders), so that a file reached through two
    places is caught wherever the places are."""

    def __init__(self) -> None:
        self.folders: dict[FolderId, str] = {}  # every folder entered -> its path as reached
        self.listed_in: dict[FolderId, tuple[str, ...] | None] = {}  # folders whose files were listed: extensions
        self.links: dict[FileKey, str] = {}  # files reached through a link (or named one by one) -> path
        self.listed: list[str] = []  # paths as reached, in listing order

    # A plain file (not a link) can only be reached twice through its folder, which is refused
    # folder by folder: only files reached through links (a few) are kept by their real place.

    # ------------------------------------------------------------------ registering

    def _folder(self, path: str, ancestors: dict[FolderId, str]) -> FolderId:
        stat = os.stat(path)
        ident = (stat.st_dev, stat.st_ino)
        if ident in ancestors:
            raise GcpbenchError(f"'{path}' links back to '{ancestors[ident]}' (a link cycle): its images would be "
                                "counted again and again; remove the link")
        if self.folders.get(ident, path) != path:
            raise GcpbenchError(f"'{path}' and '{self.folders[ident]}' are the same folder (reached twice through a "
                                "link): its images would be counted twice; remove the link")
        self.folders[ident] = path
        return ident

    def enter(self, folder: str | os.PathLike) -> None:
        """Register a folder met by a walk of fixed depth (a manifest's levels): a folder reached
        again through another path is refused; the same path may be entered again (to list it)."""
        self._folder(os.fspath(folder), {})

    def _twice(self, path: str, first: str) -> GcpbenchError:
        return GcpbenchError(f"'{path}' and '{first}' are the same file (reached twice through a link): it would be "
                             "counted twice; remove the link")

    def add_file(self, path: str | os.PathLike, key: FileKey | None = None) -> str:
        """Register one file reached through a link (or named by itself) and return its path;
        ``key`` is its real place (the real folder's identity and the real name), resolved here
        unless given. A file already listed under another path is refused."""
        path = os.fspath(path)
        if key is None:
            real = os.path.realpath(path)
            try:
                stat = os.stat(os.path.dirname(real))
                key = (stat.st_dev, stat.st_ino, os.path.basename(real))
            except OSError:  # a link into a folder that is gone: listed, reported unreadable when read
                key = (-1, -1, real)
        folder = key[:2]
        first = self.links.get(key)
        if first is None and folder in self.listed_in and _matches(key[2], self.listed_in[folder]):
            first = os.path.join(self.folders[folder], key[2])  # listed (or to be listed) as a plain file
        if first is not None:
            raise self._twice(path, first)
        self.links[key] = path
        self.listed.append(path)
        return path

    def _add_plain(self, path: str, key: FileKey) -> str:
        first = self.links.get(key)
        if first is not None:
            raise self._twice(path, first)
        self.listed.append(path)
        return path

    # ------------------------------------------------------------------ walking

    def iter_files(self, folder: str | os.PathLike, extensions: Iterable[str] | None = None) -> Iterator[str]:
        """The files below ``folder`` whose names end with one of ``extensions`` (any case; None:
        all), links followed, in listing order; each is registered (see :meth:`add_file`)."""
        wanted = tuple(e.lower() for e in extensions) if extensions is not None else None
        root = os.fspath(folder)
        yield from self._walk(root, wanted, _ancestors_of(root))

    def _walk(self, path: str, wanted: tuple[str, ...] | None, ancestors: dict[FolderId, str]) -> Iterator[str]:
        ident = self._folder(path, ancestors)
        ancestors = {**ancestors, ident: path}
        self.listed_in[ident] = wanted
        subfolders = []
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir():
                    subfolders.append(entry.path)
                elif _matches(entry.name, wanted):
                    if entry.is_symlink():
                        yield self.add_file(entry.path)
                    else:  # a plain file's real place is (this folder, its name)
                        yield self._add_plain(entry.path, (*ident, entry.name))
        for sub in sorted(subfolders):
            yield from self._walk(sub, wanted, ancestors)

    def sorted_files(self, folder: str | os.PathLike, extensions: Iterable[str] | None = None) -> list[str]:
        """:meth:`iter_files` in ImageFolder's order: sorted by folder, then by name."""
        files = list(self.iter_files(folder, extensions))
        return sorted(files, key=lambda p: (os.path.dirname(p), os.path.basename(p)))

    # ------------------------------------------------------------------ fingerprint

    def fingerprint(self, root: str | os.PathLike) -> str:
        """SHA-256 (16 hex digits) of the listed files' names relative to ``root``, sizes and
        modification times: what a resume checks to know the data is the data it started on."""
        root = os.fspath(root)
        digest = hashlib.sha256()
        for path in sorted(self.listed):
            try:
                stat = os.stat(path)
                facts = f"{stat.st_size} {stat.st_mtime_ns}"
            except OSError:
                facts = "unreadable"
            digest.update(f"{os.path.relpath(path, root)}\0{facts}\n".encode())
        return digest.hexdigest()[:16]


def listing_fingerprint(root: str | os.PathLike, paths: Iterable[str | os.PathLike]) -> str:
    """The :meth:`TreeWalk.fingerprint` of ``paths`` (files already listed elsewhere), each
    registered once: a file named twice is refused like a walk would."""
    walk = TreeWalk()
    for path in paths:
        walk.add_file(path)
    return walk.fingerprint(root)


def image_files(folder: str | os.PathLike, extensions: Iterable[str], walk: TreeWalk | None = None) -> list[Path]:
    """The files below ``folder`` with ``extensions``, in ImageFolder's order (one :class:`TreeWalk`)."""
    return [Path(p) for p in (walk or TreeWalk()).sorted_files(folder, extensions)]


def folder_fingerprint(folder: str | os.PathLike, extensions: Iterable[str]) -> str:
    """The listing fingerprint of every file with ``extensions`` below ``folder`` (one walk)."""
    walk = TreeWalk()
    for _ in walk.iter_files(folder, extensions):
        pass
    return walk.fingerprint(folder)
