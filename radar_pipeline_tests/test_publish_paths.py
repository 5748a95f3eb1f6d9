"""Issue 22 items 1: nothing publish writes or deletes leaves the published folder, and every
valid buyer id gets its own file.

A symlink planted in the published folder (at `buyers`, `.snapshots`, a buyer's folder, a
snapshot folder, a file, a `parquet` link) points at a folder of victim files that look like
what publish writes and prunes; after publish the victim is byte for byte unchanged and
publish either refused (an error naming the link, the old snapshot still published) or
published without following the link. The warehouses are empty ones with buyer lists: paths
do not depend on the data, and each publish then takes about 2 s."""
from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from radar_pipeline.platform import processes, safe_paths
from radar_pipeline.platform.identifiers import id_problem
from radar_pipeline.platform.safe_paths import UnsafePathError
from radar_pipeline.platform.warehouse import connect
from radar_pipeline.publish import build, files
from radar_pipeline.publish.buyers import buyer_file_name, buyer_id_of

OLD_SNAPSHOT = "20000101T000000000000Z-000000"  # sorts before any real snapshot: the first to prune
EDGE_IDS = ("a", "Z", "7", "x" * 64, "X" * 64, "b" * 59, "acme", "Acme", "ACME", "acme.duckdb",
            "acme.duckdb.duckdb", "a.b", "a_b", "a-b", "-", "_", ".a", "..a", "a..", "a.", "." * 63 + "A",
            "acme_1", "Acme_1")


def quiet(*_):
    pass


def warehouse(path: Path, buyers: list[str]) -> Path:
    """An empty warehouse (schema only) whose buyer_sites list `buyers`."""
    con = connect(path)
    for n, buyer in enumerate(buyers):
        con.execute("insert into buyer_sites values (?, ?, 'list.csv', ?)", [buyer, f"SITE-{n}", n + 1])
    con.close()
    return path


def snapshot_of(path: Path) -> str:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql("select any_value(snapshot_id) from publish_info").fetchall()[0][0]
    finally:
        con.close()


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (content) and folder below `root`, to compare before and after."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def make_victim(root: Path, dead_pid: int) -> Path:
    """A folder outside the published one holding what publish would write over or delete if
    it followed a link into it: buyer files, temp files of a dead publish, spill and snapshot
    folders (old ones, so pruning would pick them first)."""
    victim = root / "victim"
    for rel in ("acme.duckdb", "old.duckdb", f".old.duckdb.{OLD_SNAPSHOT}.{dead_pid}.tmp",
                f".spill.{dead_pid}.x/data", f"{OLD_SNAPSHOT}/parquet/countries.parquet",
                f"all/{OLD_SNAPSHOT}/parquet/countries.parquet", f"buyer-old/{OLD_SNAPSHOT}/parquet/x.parquet",
                f"buyer-acme/{OLD_SNAPSHOT}/parquet/x.parquet", "parquet/countries.parquet", "old/parquet/x"):
        (victim / rel).parent.mkdir(parents=True, exist_ok=True)
        (victim / rel).write_bytes(f"victim {rel}".encode())
    return victim


@pytest.fixture(scope="module")
def published_once(tmp_path_factory):
    """Buyers `acme` and `old` published once (the template each test copies), and the
    warehouse of the next publish, where `old` is no longer listed."""
    tmp = tmp_path_factory.mktemp("paths")
    out = tmp / "published"
    build.publish(warehouse(tmp / "two.duckdb", ["acme", "old"]), out / "radar.duckdb", log=quiet)
    return {"template": out, "next": warehouse(tmp / "one.duckdb", ["acme"])}


@pytest.fixture
def world(published_once, tmp_path, dead_pid):
    out = tmp_path / "published"
    shutil.copytree(published_once["template"], out, symlinks=True)  # the links are relative: still valid
    victim = make_victim(tmp_path, dead_pid)
    return {"out": out, "victim": victim, "before": tree(victim), "wh": published_once["next"],
            "snapshot": snapshot_of(out / "radar.duckdb")}


def plant(link: Path, target: Path) -> None:
    """Replace whatever is at `link` by a symlink to `target`."""
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def links_stay_inside(out: Path, allowed: set[Path] = frozenset()) -> None:
    """Every link below `out` (but the planted ones publish left alone) resolves inside it."""
    real = out.resolve()
    for dirpath, dirnames, filenames in os.walk(out):  # os.walk does not follow links
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink() and p not in allowed:
                assert p.resolve().is_relative_to(real), (p, os.readlink(p))


# --------------------------------------------------------------------------- buyer file names

@pytest.mark.parametrize("bad", ["..", ".", "...", "", "a/b", "a~1", "x" * 65, "a\n"])
def test_no_file_name_from_an_invalid_id(bad):
    assert id_problem("buyer_id", bad)
    with pytest.raises(ValueError, match="invalid id"):
        buyer_file_name(bad)


def test_buyer_file_names_are_one_to_one_short_and_readable():
    """The id rule's edge cases, then every id of up to 4 characters over `aAbB._-1`: no two
    ids share a name even where case is ignored, no folder <name> is some file <name>.duckdb
    (`acme` vs `acme.duckdb`), no name is hidden or too long for a file name with its temp
    suffixes, and the id comes back from the name."""
    small = ("".join(t) for n in range(1, 5) for t in itertools.product("aAbB._-1", repeat=n))
    ids = [i for i in (*EDGE_IDS, *small) if id_problem("buyer_id", i) is None]
    assert len(ids) > 4000 and ".." not in ids
    names = {i: buyer_file_name(i) for i in ids}
    folded = [n.lower() for n in names.values()]
    assert len(set(folded)) == len(set(ids))  # one-to-one, also on case-insensitive file systems
    assert not set(folded) & {f + ".duckdb" for f in folded}
    longest_temp = f".{'X' * 81}.duckdb.{OLD_SNAPSHOT}.4194304.tmp.wal"
    assert max(len(n) for n in names.values()) == 81 and len(longest_temp.encode()) < 255
    for i, n in names.items():
        assert buyer_id_of(n) == i and not n.startswith(".") and "/" not in n, (i, n)
    # ordinary ids keep the name BI users know; the others are readable and say why
    assert [names[i] for i in ("acme", "a_b", "a-b", "x" * 64)] == ["acme", "a_b", "a-b", "x" * 64]
    assert [names[i] for i in ("Acme", "ACME", "acme.duckdb", ".a", "..a", "a..")] == [
        "Acme~1", "ACME~f", "acme.duckdb~0", "_a~1", "__a~3", "a..~0"]
    # names publish never writes are never turned back into an id (nothing derived from them)
    for foreign in ("..", "Acme", "acme~01", "acme~g", "a~1", "~1", "_a~0", "acme.duckdb"):
        assert buyer_id_of(foreign) is None, foreign


@pytest.mark.slow
def test_every_valid_id_gets_its_own_file_and_unlisted_ones_are_removed(tmp_path):
    """Ids of 59-64 characters and `acme` beside `acme.duckdb` used to fail every publish
    after the main file was swapped; now each buyer has its file, its Parquet link and its
    snapshot folder, and a buyer dropped from the lists loses all three and nothing else."""
    ids = sorted(set(EDGE_IDS))
    out = tmp_path / "published"
    result = build.publish(warehouse(tmp_path / "all.duckdb", ids), out / "radar.duckdb", log=quiet)
    assert sorted(result.buyers) == ids
    for buyer in ids:
        name = buyer_file_name(buyer)
        con = duckdb.connect(str(out / "buyers" / f"{name}.duckdb"), read_only=True)
        assert con.sql("select distinct scope from publish_info").fetchall() == [(f"buyer:{buyer}",)]
        con.close()
        link = out / "buyers" / name / "parquet"
        assert link.is_symlink() and link.resolve().parent.parent == (out / ".snapshots" / f"buyer-{name}").resolve()
    links_stay_inside(out)

    gone = {"acme.duckdb", "X" * 64, "Acme", ".a"}
    result = build.publish(warehouse(tmp_path / "fewer.duckdb", [i for i in ids if i not in gone]),
                           out / "radar.duckdb", log=quiet)
    assert sorted(result.removed_buyers) == sorted(gone)
    expected = {buyer_file_name(i) for i in ids if i not in gone}
    assert {p.name.removesuffix(".duckdb") for p in (out / "buyers").glob("*.duckdb")} == expected
    assert {p.name for p in (out / "buyers").iterdir() if p.is_dir()} == expected
    assert {p.name for p in (out / ".snapshots").iterdir()} == {"all", *(f"buyer-{n}" for n in expected)}
    assert (out / "buyers" / "acme.duckdb").is_file()  # `acme` stays when `acme.duckdb` goes


def test_dotdot_buyer_never_becomes_a_path(world):
    """`..` matches ^[A-Za-z0-9._-]{1,64}$: the id rule refuses it anyway, and a leftover
    `...duckdb` (stem `..`) is never turned into a path to delete."""
    out = world["out"]
    leftover = out / "buyers" / "...duckdb"
    leftover.write_bytes(b"not ours")
    build.publish(world["wh"], out / "radar.duckdb", log=quiet)
    assert leftover.read_bytes() == b"not ours"
    main_link, listing = os.readlink(out / "parquet"), sorted(os.listdir(out / "buyers"))
    # an id that reached the warehouse some other way is refused before any path is built
    wh = out.parent / "dotdot.duckdb"
    con = connect(wh)
    con.execute("insert into buyer_sites values ('..', 'SITE-1', 'x.csv', 1), ('acme', 'SITE-1', 'x.csv', 2)")
    con.close()
    with pytest.raises(ValueError, match="invalid id"):
        build.publish(wh, out / "radar.duckdb", log=quiet)
    assert os.readlink(out / "parquet") == main_link and sorted(os.listdir(out / "buyers")) == listing
    assert tree(world["victim"]) == world["before"]


# --------------------------------------------------------------------------- planted links: refused

REFUSED = {  # where the link is planted, relative to the published folder -> what it points at
    "buyers": "",
    ".snapshots": "",
    ".snapshots/all": "all",
    ".snapshots/buyer-acme": "buyer-acme",
    "buyers/acme": "",
    "buyers/acme.duckdb": "acme.duckdb",
    "radar.duckdb": "acme.duckdb",
}


@pytest.mark.parametrize("place", list(REFUSED))
def test_a_planted_link_where_publish_writes_is_refused_and_the_old_snapshot_stays(world, place):
    out, victim = world["out"], world["victim"]
    plant(out / place, victim / REFUSED[place])
    try:  # keep 1 snapshot: a publish that followed the link would prune the victim's "snapshots"
        build.publish(world["wh"], out / "radar.duckdb", log=quiet, keep_snapshots=1)
        error = None
    except UnsafePathError as exc:
        error = str(exc)
    assert tree(victim) == world["before"]
    assert error and str(out.resolve() / place) in error and "symlink" in error, error
    if place != "radar.duckdb":
        assert snapshot_of(out / "radar.duckdb") == world["snapshot"]  # nothing swapped
    assert not list(out.rglob(".*.tmp*")) and not list(out.glob(".spill.*"))


def test_a_link_planted_while_publish_builds_is_refused_before_anything_is_swapped(world, monkeypatch):
    """The second check, just before the swap: the old snapshot stays whole and the new
    snapshot's folders and temp files do not pile up."""
    out, victim = world["out"], world["victim"]
    snapshots_before = {p.relative_to(out) for p in (out / ".snapshots").glob("*/*")}
    export = files.export_parquet

    def export_then_plant(con, db, root, folder):
        export(con, db, root, folder)
        if db == "buyer":
            plant(out / "buyers" / "acme", victim)

    monkeypatch.setattr(files, "export_parquet", export_then_plant)
    with pytest.raises(UnsafePathError, match="symlink"):
        build.publish(world["wh"], out / "radar.duckdb", log=quiet)
    assert snapshot_of(out / "radar.duckdb") == world["snapshot"]
    assert {p.relative_to(out) for p in (out / ".snapshots").glob("*/*")} == snapshots_before
    assert not list(out.rglob(".*.tmp*")) and not list(out.glob(".spill.*"))
    assert tree(victim) == world["before"]


# --------------------------------------------------------------------------- planted links: not followed

NOT_FOLLOWED = {  # publish succeeds: a `parquet` link is replaced as a link; leftovers are skipped
    "parquet": "",
    "buyers/acme/parquet": "",
    "buyers/old.duckdb": "old.duckdb",          # an unlisted buyer's file
    "buyers/old": "old",                        # an unlisted buyer's folder
    ".snapshots/buyer-old": "buyer-old",        # an unlisted buyer's snapshots
    f".snapshots/all/{OLD_SNAPSHOT}": OLD_SNAPSHOT,  # the oldest snapshot, first to prune
    f".snapshots/buyer-acme/{OLD_SNAPSHOT}": OLD_SNAPSHOT,
}


@pytest.mark.slow
@pytest.mark.parametrize("place", list(NOT_FOLLOWED))
def test_publish_never_follows_a_link_it_replaces_or_prunes(world, place):
    out, victim = world["out"], world["victim"]
    plant(out / place, victim / NOT_FOLLOWED[place])
    messages: list[str] = []
    result = build.publish(world["wh"], out / "radar.duckdb", log=messages.append, keep_snapshots=1)
    assert tree(victim) == world["before"]
    assert snapshot_of(out / "radar.duckdb") == result.snapshot_id != world["snapshot"]
    assert os.readlink(out / "parquet") == f".snapshots/all/{result.snapshot_id}/parquet"
    assert os.readlink(out / "buyers" / "acme" / "parquet") == \
        f"../../.snapshots/buyer-acme/{result.snapshot_id}/parquet"
    # pruning to one snapshot kept only the new one (the planted link is neither counted nor followed)
    assert [p.name for p in (out / ".snapshots" / "all").iterdir() if not p.is_symlink()] == [result.snapshot_id]
    left = {out / place} if (out / place).is_symlink() and "parquet" not in place else set()
    if left:
        assert any(str(out.resolve() / place) in m and "symlink" in m for m in messages), messages
    links_stay_inside(out, allowed=left)


def test_a_real_folder_at_a_parquet_link_is_moved_aside_not_deleted(world):
    out = world["out"]
    copy = out / "buyers" / "acme" / "parquet"
    copy.unlink()
    copy.mkdir()
    (copy / "mine.parquet").write_bytes(b"a BI user's copy")
    result = build.publish(world["wh"], out / "radar.duckdb", log=quiet)
    assert copy.is_symlink() and result.snapshot_id in os.readlink(copy)
    [aside] = (out / "buyers" / "acme").glob("parquet.replaced-*")
    assert (aside / "mine.parquet").read_bytes() == b"a BI user's copy"


# --------------------------------------------------------------------------- leftover removal

def test_leftover_removal_never_deletes_through_a_link(tmp_path, dead_pid):
    """remove_orphans, processes.remove_left_by_dead and _prune, called on their own."""
    victim = make_victim(tmp_path, dead_pid)
    before = tree(victim)
    out = tmp_path / "published"
    out.mkdir()
    mine = out / f".radar.duckdb.{OLD_SNAPSHOT}.{dead_pid}.tmp"
    mine.write_bytes(b"x")
    (out / "buyers").symlink_to(victim)  # the victim holds `.old.duckdb.<snap>.<dead pid>.tmp`
    (out / f".spill.{dead_pid}.y").symlink_to(victim / f".spill.{dead_pid}.x")
    (out / f".acme.duckdb.{OLD_SNAPSHOT}.{dead_pid}.tmp").symlink_to(victim / "acme.duckdb")
    messages: list[str] = []
    assert files.remove_orphans(out, log=messages.append) == [mine]
    assert tree(victim) == before and len(messages) == 3 and all("symlink" in m for m in messages)

    staging = tmp_path / "tmp"
    staging.mkdir()
    real = staging / f"radar-ingest-{dead_pid}-a"
    real.mkdir()
    (staging / f"radar-ingest-{dead_pid}-b").symlink_to(victim)
    assert processes.remove_left_by_dead(sorted(staging.iterdir()), r"^radar-ingest-(\d+)-",
                                         log=quiet) == [real]
    assert (staging / f"radar-ingest-{dead_pid}-b").is_symlink() and tree(victim) == before

    scope = out / ".snapshots" / "all"
    for snap in ("20260101T000000000000Z-aaaaaa", "20260102T000000000000Z-bbbbbb"):
        (scope / snap).mkdir(parents=True)
    (scope / OLD_SNAPSHOT).symlink_to(victim / OLD_SNAPSHOT)
    assert files.prune(out, scope, keep="20260102T000000000000Z-bbbbbb", n_keep=1, log=quiet) == [
        "20260101T000000000000Z-aaaaaa"]
    assert (scope / OLD_SNAPSHOT).is_symlink() and tree(victim) == before
    shutil.rmtree(out / ".snapshots")
    (out / ".snapshots").symlink_to(victim)  # .snapshots/all -> victim/all holds old snapshots
    messages.clear()
    assert files.prune(out, out / ".snapshots" / "all", keep="x", n_keep=1, log=messages.append) == []
    assert tree(victim) == before and "symlink" in messages[0]
    assert files.remove_unlisted_buyers(out, set(), messages.append) == []  # buyers -> victim (old.duckdb)
    assert tree(victim) == before and "symlink" in messages[1]


def test_safe_paths_rules(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    (root / "file").write_bytes(b"x")
    assert safe_paths.checked(root, root / "real" / "new") == root.resolve() / "real" / "new"
    for path, reason in ((root / "link" / "x", "symlink"), (root / "link", "symlink"),
                         (root / "real" / ".." / ".." / "outside", "'..'"), (outside / "x", "not inside"),
                         (root / "file" / "x", "not a folder")):
        with pytest.raises(UnsafePathError, match=reason):
            safe_paths.checked(root, path)
    assert safe_paths.checked(root, root / "link", link_ok=True) == root.resolve() / "link"  # kept as a link
    with pytest.raises(UnsafePathError):
        safe_paths.make_dirs(root, root / "link" / "sub")
    assert safe_paths.remove(root, root / "link", link_ok=True) and outside.is_dir()
    # the configured root itself may be a link (an administrator's choice, like any path setting)
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert safe_paths.make_dirs(alias, alias / "a" / "b") == root.resolve() / "a" / "b"


def test_pictures_are_never_written_through_a_planted_link(tmp_path, monkeypatch):
    """The pictures folder is served to the UI and others may write in it: a link planted at a
    picture, or at a folder below RADAR_PICTURES, is refused (the asset fails naming it) and
    whatever it points at is left as it was (issue 22 item 1: one check for every write)."""
    from matplotlib.figure import Figure

    from radar_pipeline.pictures import render

    pictures = tmp_path / "pictures"
    monkeypatch.setenv("RADAR_PICTURES", str(pictures))
    elsewhere, victim = tmp_path / "elsewhere", tmp_path / "victim.txt"
    elsewhere.mkdir()
    victim.write_text("keep me")
    fig = Figure(figsize=(1, 1))

    # a folder link below the pictures folder: nothing is written or removed through it
    (elsewhere / "site_01_x.png").write_text("someone's file")
    pictures.mkdir()
    (pictures / "sites").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symlink"):
        render.write_site_explanations([], pictures / "sites" / "explain", 2024)
    with pytest.raises(UnsafePathError, match="symlink"):
        render.write_site_explanations([], pictures / "sites", 2024)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["site_01_x.png"]

    # a link at the picture itself: savefig does not write through it
    (pictures / "risk_map").mkdir()
    (pictures / "risk_map" / "risk_map_2024.png").symlink_to(victim)
    with pytest.raises(UnsafePathError, match=r"risk_map_2024\.png"):
        render._save(fig, pictures / "risk_map" / "risk_map_2024.png")
    assert victim.read_text() == "keep me"

    # real folders: written as before, folders made
    png = render._save(fig, pictures / "countries" / "country_picture_2024.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _, page, _ = render.write_site_explanations([], pictures / "explain", 2024)
    assert "no scored sites" in page.read_text()
