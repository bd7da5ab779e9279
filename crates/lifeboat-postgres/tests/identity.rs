//! Server identity against real PostgreSQL servers: one database under
//! several spellings, another database, a physical copy, a user who may not
//! read `data_directory`, and the contents listing.

use lifeboat_postgres::TempCluster;
use lifeboat_postgres::conn::{ConnConfig, PgHost};
use lifeboat_postgres::identity::{self, Relation};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn identity_is_what_the_server_says_not_the_url() {
    let rt = rt();
    let c = TempCluster::start().unwrap();
    let prod = rt.block_on(c.create_database("prod")).unwrap();
    let src = rt.block_on(identity::read(&prod)).unwrap();
    assert!(src.data_directory.is_some(), "a superuser reads it");

    // localhost instead of 127.0.0.1, the Unix socket, another application name.
    let mut spellings = vec![
        ConnConfig::parse(&format!(
            "postgresql://{}@localhost:{}/prod?application_name=x",
            c.superuser(),
            c.port()
        ))
        .unwrap()
        .with_password(c.password().clone()),
    ];
    let mut sock = prod.clone();
    sock.host = PgHost::Unix(c.socket_dir());
    spellings.push(sock);
    for s in &spellings {
        let t = rt.block_on(identity::read(s)).unwrap();
        assert_eq!(
            identity::relation(&src, &t),
            Relation::SameServer {
                data_directory_compared: true
            },
            "{}",
            s.display_url()
        );
    }

    // Another database of the same server; a database still to be created.
    rt.block_on(c.create_database("other")).unwrap();
    let other = rt
        .block_on(identity::read(&c.conn_config("other")))
        .unwrap();
    assert_eq!(identity::relation(&src, &other), Relation::OtherDatabase);
    let missing = rt.block_on(identity::read(&c.conn_config("nope"))).unwrap();
    assert_eq!(missing.database_oid, None);
    assert_eq!(identity::relation(&src, &missing), Relation::OtherDatabase);

    // A physical copy: same system identifier and OID, another server.
    let copy = c.physical_copy().unwrap();
    let t = rt
        .block_on(identity::read(&copy.conn_config("prod")))
        .unwrap();
    assert_eq!(t.system_identifier, src.system_identifier);
    assert_eq!(t.database_oid, src.database_oid);
    assert!(
        matches!(identity::relation(&src, &t), Relation::Copy { .. }),
        "{:?}",
        identity::relation(&src, &t)
    );

    // A user without pg_read_all_settings: no data_directory, the start time decides.
    rt.block_on(async {
        let admin = prod.connect().await.unwrap();
        admin
            .batch_execute("CREATE ROLE plain LOGIN PASSWORD 'plain-pw'")
            .await
            .unwrap();
    });
    let plain = ConnConfig::new(PgHost::Tcp("127.0.0.1".into()), c.port(), "plain", "prod")
        .with_password(lifeboat_postgres::Secret::new("plain-pw"));
    let p = rt.block_on(identity::read(&plain)).unwrap();
    assert_eq!(p.data_directory, None);
    assert_eq!(
        identity::relation(&src, &p),
        Relation::SameServer {
            data_directory_compared: false
        }
    );

    // Contents: empty when created, then listed by kind and name.
    rt.block_on(async {
        let cl = c.conn_config("other").connect().await.unwrap();
        assert!(identity::user_objects(&cl, 5).await.unwrap().is_empty());
        cl.batch_execute(
            "CREATE TABLE t1 (id int); CREATE VIEW v1 AS SELECT 1; CREATE SCHEMA s; \
             CREATE TABLE s.t2 (id serial); CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
             CREATE TYPE mood AS ENUM ('ok')",
        )
        .await
        .unwrap();
        let got = identity::user_objects(&cl, 3).await.unwrap();
        assert_eq!(got.total, 7, "{got:?}");
        assert_eq!(
            got.first,
            vec!["function public.f", "schema s", "sequence s.t2_id_seq"]
        );
        assert!(got.listing().ends_with("… (7 objects in all)"));
    });
}
